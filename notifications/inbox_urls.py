from django.urls import path

from notifications import inbox_page

urlpatterns = [
    path("", inbox_page.inbox_page, name="inbox"),
    path("login/", inbox_page.InboxLoginView.as_view(), name="inbox-login"),
    path("logout/", inbox_page.inbox_logout, name="inbox-logout"),
    path("token", inbox_page.inbox_token, name="inbox-token"),
]
