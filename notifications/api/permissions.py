from __future__ import annotations

from rest_framework.permissions import BasePermission

from notifications.permissions import REGISTRY, has_key


def requires(*keys: str) -> type[BasePermission]:
    """A DRF permission class demanding every one of `keys`."""
    unknown = [k for k in keys if k not in REGISTRY]
    if unknown:
        raise KeyError(f"unregistered permission keys: {unknown}")

    class RequiresKeys(BasePermission):
        message = f"Missing permission: {', '.join(keys)}"

        def has_permission(self, request, view):
            return all(has_key(request.user, key) for key in keys)

    RequiresKeys.__name__ = "Requires_" + "_".join(k.replace(".", "_").replace("/", "_") for k in keys)
    return RequiresKeys
