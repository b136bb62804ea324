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
