"""The public HTTP API's OpenAPI document (``/api/openapi.json``) and its docs page (``/api/docs``)."""
