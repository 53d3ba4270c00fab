"""The Django admin, cut to the platforms a staff user administers.

Every ModelAdmin of the project is one of two kinds:

- `PlatformScopedAdmin`: declares `platform_lookup`, the path from its model to
  `Platform` ("platform", "build__platform", "memberships__platform"; `None` for
  shared reference tables every platform reads). Its change list, change pages,
  autocomplete answers, list filters, foreign-key and many-to-many choices and
  saves are all limited to the user's platforms; another platform's object id
  in the URL is a 404.
- `SuperuserOnlyAdmin`: internal tables (celery-beat, idempotency keys, inbox
  counters, tokens, staged entries, groups) that only superusers see.

A platform admin is a staff user with an active `Membership.is_platform_admin`
(`tenancy.administered_platforms`). Administering a platform is what grants the
admin's view/add/change/delete rights on scoped models; Django model
permissions are not consulted for them, so what a platform admin may touch
follows their memberships and there is no group to keep in sync. Superusers are
unaffected: they see and change everything.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import Http404

from notifications.models import Membership, Platform
from notifications.tenancy import administered_platforms


def is_operator(request) -> bool:
    return request.user.is_active and request.user.is_superuser


def platform_ids(request) -> frozenset[int]:
    """Ids of the platforms this request's user administers, read once per request."""
    cached = getattr(request, "_administered_platform_ids", None)
    if cached is None:
        cached = frozenset(administered_platforms(request.user).values_list("pk", flat=True))
        request._administered_platform_ids = cached
    return cached


def related_choices(request, model, queryset, site):
    """`queryset` of `model` cut to the rows this user may pick in a form or a filter."""
    if is_operator(request):
        return queryset
    if model is Platform:
        return queryset.filter(pk__in=platform_ids(request))
    model_admin = site._registry.get(model)
    if isinstance(model_admin, PlatformScopedAdmin):
        return model_admin.scope_queryset(request, queryset)
    return queryset.none()  # internal or unregistered: nothing to pick


class ScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A list filter on a relation that offers only the user's rows (no other tenant's names)."""

    def field_choices(self, field, request, model_admin):
        related = field.related_model
        qs = related_choices(request, related, related._default_manager.all(), model_admin.admin_site)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            qs = qs.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in qs]

    def queryset(self, request, queryset):
        # A value typed into the URL that is not on offer (another tenant's id) matches nothing.
        offered = {str(pk) for pk, _ in self.lookup_choices}
        if any(str(value) not in offered for value in self.lookup_val or []):
            return queryset.none()
        return super().queryset(request, queryset)


def _through_to_many(model, lookup: str) -> bool:
    """Whether a lookup walks a to-many relation (where a join can reach rows outside the scope)."""
    for part in lookup.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or comparison: the walk is over
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


class ScopedFormfieldsMixin:
    """Foreign-key and many-to-many choices (selects, raw ids, autocompletes) limited to the user's rows.

    The form field's queryset is what validates a POST, so a raw id or
    autocomplete value naming another platform's row is refused on save.
    """

    # Django 5 warns that bare URL fields will assume https in 6.0: say so now.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_field_queryset(self, db, db_field, request):
        qs = super().get_field_queryset(db, db_field, request)
        if is_operator(request):
            return qs
        model = db_field.remote_field.model
        if qs is None:
            qs = model._default_manager.using(db).all()
        return related_choices(request, model, qs, self.admin_site)


class PlatformScopedAdmin(ScopedFormfieldsMixin, admin.ModelAdmin):
    # Path from the model to Platform; None for a table shared by every platform
    # (readable by platform admins, written by superusers only).
    platform_lookup: str | None = "platform"
    # Rows whose platform is null are shared defaults: visible, read-only for platform admins.
    shared_when_null = False
    # Platform admins may look but not add, change or delete.
    view_only_for_platform_admins = False

    # -- rows --------------------------------------------------------------

    def scope_queryset(self, request, queryset):
        if is_operator(request) or self.platform_lookup is None:
            return queryset
        cond = Q(**{f"{self.platform_lookup}__in": platform_ids(request)})
        if self._multi_valued():
            # A join through a to-many relation repeats rows: filter by a subquery instead.
            cond = Q(pk__in=queryset.model._default_manager.filter(cond).values("pk"))
        if self.shared_when_null:
            cond |= Q(**{f"{self.platform_lookup}__isnull": True})
        return queryset.filter(cond)

    def _multi_valued(self) -> bool:
        fields = get_fields_from_path(self.model, self.platform_lookup)
        return any(f.many_to_many or f.one_to_many for f in fields)

    def get_queryset(self, request):
        return self.scope_queryset(request, super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        # Autocomplete answers come from here: scoped even if a subclass's queryset forgot.
        return super().get_search_results(request, self.scope_queryset(request, queryset), search_term)

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if is_operator(request):
            return filters
        scoped = []
        for entry in filters:
            if isinstance(entry, str) and get_fields_from_path(self.model, entry)[-1].is_relation:
                entry = (entry, ScopedRelatedFilter)
            scoped.append(entry)
        return scoped

    def lookup_allowed(self, lookup, value, request):
        # `?memberships__platform__key=b` would list A's users who are also in B:
        # through a to-many relation only the scoped filters' own parameters pass.
        if not is_operator(request) and _through_to_many(self.model, lookup):
            allowed = set()
            for entry in self.get_list_filter(request):
                if isinstance(entry, tuple) and entry[1] is ScopedRelatedFilter:
                    target = get_fields_from_path(self.model, entry[0])[-1].target_field.name
                    allowed |= {f"{entry[0]}__{target}__exact", f"{entry[0]}__isnull"}
            if lookup not in allowed:
                return False
        return super().lookup_allowed(lookup, value, request)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Outside the user's platforms is the same as not there at all: a 404, no hint.
        raise Http404

    def platform_id_of(self, obj) -> int | None:
        """The platform an unsaved object belongs to, walking `platform_lookup`."""
        parts = self.platform_lookup.split("__")
        for part in parts[:-1]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        field = obj._meta.get_field(parts[-1])
        return getattr(obj, field.attname if field.is_relation else parts[-1])

    def save_form(self, request, form, change):
        obj = super().save_form(request, form, change)
        if not is_operator(request) and self.platform_lookup is not None and not self._multi_valued():
            if self.platform_id_of(obj) not in platform_ids(request):
                raise PermissionDenied("That platform is not one you administer.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and db_field.name == self.platform_lookup and not is_operator(request):
            field.required = True  # a null platform is a shared default: superusers only
        return field

    # -- rights ------------------------------------------------------------

    def _administers(self, request) -> bool:
        return bool(platform_ids(request))

    def _may_write(self, request, obj=None) -> bool:
        if self.platform_lookup is None or self.view_only_for_platform_admins:
            return False
        if obj is not None and self.shared_when_null and self.platform_id_of(obj) is None:
            return False
        return self._administers(request)

    def has_module_permission(self, request):
        return super().has_module_permission(request) if is_operator(request) else self._administers(request)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) if is_operator(request) else self._administers(request)

    def has_add_permission(self, request):
        return super().has_add_permission(request) if is_operator(request) else self._may_write(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) if is_operator(request) else self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) if is_operator(request) else self._may_write(request, obj)


class PlatformMembersAdmin(PlatformScopedAdmin):
    """The users admin: platform admins see their platforms' members.

    They edit only users who belong to no other platform and are not
    superusers (a shared account is another tenant's too), never the privilege
    fields, and a user they add joins one of their platforms.
    """

    platform_lookup = "memberships__platform"
    operator_fields = ["is_superuser", "is_staff", "groups", "user_permissions"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if is_operator(request) else [*fields, *self.operator_fields]

    def _wholly_managed(self, request, obj) -> bool:
        # A user who also belongs to a platform this admin does not run is shared: view only.
        return not obj.is_superuser and not obj.memberships.exclude(platform__in=platform_ids(request)).exists()

    def has_change_permission(self, request, obj=None):
        if obj is not None and not is_operator(request) and not self._wholly_managed(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not is_operator(request) and not self._wholly_managed(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None and not is_operator(request):
            fieldsets = (*fieldsets, ("Platform", {"fields": ["platform"]}))
        return fieldsets

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None or is_operator(request):
            return super().get_form(request, obj, **kwargs)
        # A platform admin's new user joins one of their platforms, or they could not see it again.
        kwargs["fields"] = [f for _, options in self.add_fieldsets for f in options["fields"]]
        base = super().get_form(request, obj, **kwargs)
        platforms = administered_platforms(request.user)
        return type(base.__name__, (base,), {"platform": forms.ModelChoiceField(queryset=platforms)})

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and "platform" in form.cleaned_data:
            Membership.objects.get_or_create(user=obj, platform=form.cleaned_data["platform"])


class PlatformScopedInline(ScopedFormfieldsMixin, admin.TabularInline):
    """An inline whose pickers are scoped like its parent page, and whose rights are the parent's.

    Its rows hang off a parent object the scoped parent admin already found,
    so administering a platform grants them as it grants the parent. Rows of
    the parent that belong to another platform (a shared user's other
    memberships) are left out when `platform_lookup` names the path.
    """

    platform_lookup: str | None = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self.platform_lookup and not is_operator(request):
            queryset = queryset.filter(**{f"{self.platform_lookup}__in": platform_ids(request)})
        return queryset

    def _allowed(self, request) -> bool:
        return bool(platform_ids(request))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) if is_operator(request) else self._allowed(request)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) if is_operator(request) else self._allowed(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) if is_operator(request) else self._allowed(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) if is_operator(request) else self._allowed(request)


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """An internal table: invisible to everyone but superusers."""

    def has_module_permission(self, request):
        return is_operator(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_operator(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return is_operator(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return is_operator(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_operator(request) and super().has_delete_permission(request, obj)


def superuser_only(site, *models) -> None:
    """Re-register third-party admins (celery-beat, fcm-django, auth groups) as superuser-only."""
    for model in models:
        current = type(site._registry[model])
        site.unregister(model)
        site.register(model, type(current.__name__, (SuperuserOnlyAdmin, current), {"__module__": __name__}))
