import factory

from notifications.models import Membership, Platform, User


class PlatformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Platform
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"platform-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    site_name = factory.LazyAttribute(lambda o: o.name)
    site_url = factory.LazyAttribute(lambda o: f"https://{o.key}.example.com")
    support_email = factory.LazyAttribute(lambda o: f"support@{o.key}.example.com")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    phone_number = factory.Sequence(lambda n: f"+2519{11000000 + n:08d}")
    password = factory.django.Password("pw")


def make_member(*, platform, username=None, role="STUDENT", admin=False, **kwargs):
    """A user (made or found by username) with a membership on `platform` holding `role` there."""
    params = dict(kwargs)
    if username:
        params["username"] = username
    user = UserFactory(**params)
    Membership.objects.get_or_create(user=user, platform=platform, defaults={"is_platform_admin": admin, "role": role})
    return user
