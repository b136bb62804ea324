from typing import ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person. The e-mail address is the login; there is no username."""

    username = None  # type: ignore[assignment]  # no username: AbstractUser's field removed
    email = models.EmailField("e-mail address", unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    # An IANA name ("Europe/Paris"): times in pages and e-mails are shown in it (invoices stay
    # in UTC). Blank until set on the notifications page or detected from the browser.
    time_zone = models.CharField(max_length=64, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # The e-mail is the login, so not AbstractUser's manager (whose methods take a username).
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    @property
    def initials(self) -> str:
        """For avatars: the first letters of the first and last words of the name ("Ada
        Lovelace" → "AL"), or the address's first letter when there is no name."""
        words = [word for word in self.full_name.split() if word[0].isalnum()]
        if words:
            letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
            return letters.upper()
        return (self.email[:1] or "?").upper()
