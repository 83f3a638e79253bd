"""One router per resource; each route parses, calls a plain function, maps errors."""
