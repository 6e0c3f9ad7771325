from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        from . import schema  # noqa: F401  registers OpenAPI extensions
