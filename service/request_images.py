"""Read the images of a request: multipart files (field `file`, repeatable) or a raw body."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMedia
from service.predictor import ImageInput

FILE_FIELDS = ("file", "files")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_images(request: Request, max_images: int) -> list[ImageInput]:
    kind = media_type(request)
    if kind == "multipart/form-data":
        # The body was already capped in bytes; the file count is checked here (413).
        try:
            form = await request.form(max_files=max_images, max_fields=max_images + 16)
        except HTTPException as exc:
            if "Too many files" in str(exc.detail):
                raise PayloadTooLarge(f"more than {max_images} images in one request") from exc
            raise
        uploads = [
            value
            for key, value in form.multi_items()
            if key in FILE_FIELDS and isinstance(value, UploadFile)
        ]
        if len(uploads) > max_images:
            raise PayloadTooLarge(f"more than {max_images} images in one request")
        if not uploads:
            raise BadRequest("the multipart body has no file in field 'file'")
        return [ImageInput(await upload.read(), upload.filename) for upload in uploads]
    if kind == "application/x-www-form-urlencoded":
        raise BadRequest("send images as multipart/form-data (field 'file') or as a raw body")
    if kind == "application/json":
        raise UnsupportedMedia(
            "this endpoint takes images (multipart field 'file' or a raw image body), not JSON"
        )
    body = await request.body()
    if not body:
        raise BadRequest("the request body is empty; send an image")
    return [ImageInput(body, None)]
