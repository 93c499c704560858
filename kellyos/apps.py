from django.apps import AppConfig


class KellyOSConfig(AppConfig):
    """The composition root: project-wide commands (demo data) that span the domain apps."""

    name = "kellyos"
    verbose_name = "Kelly OS"

    def ready(self) -> None:
        from kellyos import slots  # noqa: F401 - registers the threads' deploy check
