"""`/inbox/`: a learner signs in (Django's session login) and sees `<notify-inbox>` full-page.

The page never holds a long-lived token: its script asks `POST /inbox/token`
(session and CSRF) for an inbox token of the signed-in user, scoped to one
platform and short-lived, and asks again before it runs out. Tokens a session
got are revoked when it signs out (from this page or the admin), which also
closes the sockets they opened.
"""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from notifications import inbox_tokens
from notifications.models import Membership

SESSION_KEY = "inbox_token_ids"
# Enough for a day of refreshes across a few tabs; older ones have expired anyway.
SESSION_KEEP = 100


class InboxLoginView(LoginView):
    template_name = "notifications/inbox_login.html"
    redirect_authenticated_user = True


def _memberships(user):
    return list(
        Membership.objects.filter(user=user, is_active=True, platform__is_active=True)
        .select_related("platform")
        .order_by("platform__name")
    )


def _chosen(request, memberships):
    """The platform the page shows: the only one, or the one `?platform=` names."""
    wanted = request.GET.get("platform") or request.POST.get("platform") or ""
    if len(memberships) == 1 and not wanted:
        return memberships[0].platform
    return next((m.platform for m in memberships if m.platform.key == wanted), None)


@login_required
def inbox_page(request):
    memberships = _memberships(request.user)
    platform = _chosen(request, memberships)
    return render(
        request,
        "notifications/inbox_page.html",
        {"platform": platform, "memberships": memberships},
        status=200 if platform or not request.GET.get("platform") else 404,
    )


@require_POST
def inbox_token(request):
    """A fresh inbox token for the session's user on the page's platform."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Signed out"}, status=403)
    platform = _chosen(request, _memberships(request.user))
    if platform is None:
        return JsonResponse({"error": "No such platform for this user"}, status=404)
    token, raw = inbox_tokens.inbox_token_issue(user=request.user, platform=platform)
    request.session[SESSION_KEY] = [*request.session.get(SESSION_KEY, [])[-(SESSION_KEEP - 1) :], token.pk]
    return JsonResponse(
        {"token": raw, "expires_at": token.expires_at.isoformat(), "user_id": request.user.pk, "platform": platform.key}
    )


@require_POST
def inbox_logout(request):
    logout(request)  # user_logged_out revokes the session's inbox tokens
    return redirect("inbox-login")


def revoke_session_tokens(sender, request, user, **kwargs):
    """`user_logged_out`: the inbox tokens this session got stop working, and their sockets close."""
    if request is None or user is None or not hasattr(request, "session"):
        return
    ids = request.session.get(SESSION_KEY) or []
    if ids:
        inbox_tokens.tokens_revoke(token_ids=ids, user=user)
