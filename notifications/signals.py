from django.contrib.auth.models import Group

from notifications.models import Role
from notifications.permissions import role_group_name


def user_role_group(sender, instance, **kwargs):
    """Keep a user in exactly the group of their role."""
    wanted = role_group_name(instance.role)
    role_groups = {role_group_name(r) for r in Role.values}
    current = set(instance.groups.filter(name__in=role_groups).values_list("name", flat=True))
    if current == {wanted}:
        return
    stale = current - {wanted}
    if stale:
        instance.groups.remove(*Group.objects.filter(name__in=stale))
    if wanted not in current:
        group, _ = Group.objects.get_or_create(name=wanted)
        instance.groups.add(group)
