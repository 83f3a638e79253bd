"""The inference service: loads SavedModels from the model repository and serves them over HTTP.

Run: `python -m service --models-dir models --host 127.0.0.1 --port 8000`
App factory for uvicorn: `uvicorn --factory service.app:create_app`.
"""
