"""`python -m notes` runs the API with uvicorn (the image's CMD calls uvicorn directly)."""

import os

import uvicorn


def main() -> None:
    uvicorn.run(
        "notes.app:app",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
