class ApplicationError(Exception):
    """A business rule said no. The message is written for the person who asked.

    Views turn it into a form error or a flash message, the API into its error shape; the
    code is machine-readable.
    """

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


class RateLimited(ApplicationError):
    """Too many of something in a while: `retry_after` seconds until one more is allowed."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, code="rate_limited")
        self.retry_after = max(1, int(retry_after))
