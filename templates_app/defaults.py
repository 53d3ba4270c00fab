"""The shipped notification types and their default templates: data in code.

`sync_notification_defaults` (run after every `migrate`, and as a management
command) writes these into the default template rows (`platform=None`).
Platforms that have not customised a type read the default row, so an edit
here reaches all of them on the next deploy; a platform's copy records the
hash of the default it was made from, which is how the API can say that the
default has moved on since (`default_changed_since_customized`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from notifications.channels import Channel

EMAIL, PUSH, IN_APP, SMS = Channel.EMAIL.value, Channel.PUSH.value, Channel.IN_APP.value, Channel.SMS.value

# Channels and SPAs are records with stable ids (the API takes `channel_ids`
# and `spa_ids`); these ids are part of the contract, never renumber them.
CHANNELS: tuple[tuple[int, str], ...] = (
    (1, EMAIL),
    (2, PUSH),
    (3, IN_APP),
    (4, SMS),
)
SPAS: tuple[tuple[int, str, str], ...] = (
    (1, "admin", "Admin SPA"),
    (2, "skills", "Skills SPA"),
    (3, "mentor", "Mentor SPA"),
)

# §8.2: available in every template, filled from the Platform record.
GLOBAL_VARIABLES: dict[str, str] = {
    "site_name": "Platform name",
    "site_url": "Platform URL",
    "site_logo_url": "Platform logo URL",
    "platform_name": "Platform name (capitalized)",
    "support_email": "Platform support email",
    "privacy_url": "Privacy policy URL",
    "terms_url": "Terms of use URL",
    "logo_url": "Platform logo URL",
    "current_year": "Current year",
    "base_domain": "Base domain of the platform",
    "skills_url": "Skills platform URL",
    "unsubscribe_url": "Campaign unsubscribe URL",
    "platform_key": "Platform identifier",
    "recipient_timezone": "Recipient's IANA timezone (used by the local_datetime tag)",
}
# §8.2: about the recipient.
USER_VARIABLES: dict[str, str] = {
    "username": "Recipient's username",
    "login_url": "Login or redirect URL",
    "login_path": "Path portion of the login URL",
}

# §8.3: for these types only configuration fields are editable.
SYSTEM_MANAGED_TYPES = frozenset({"PROACTIVE_LEARNER_NOTIFICATION", "POLICY_ASSIGNMENT", "HUMAN_SUPPORT_NOTIFICATION"})
SYSTEM_MANAGED_READ_ONLY = ("message_body", "short_message_body", "email_html_template")

# The fields a platform's copy owns (copied from the default on first edit).
CONTENT_FIELDS = (
    "name",
    "description",
    "message_title",
    "message_body",
    "short_message_body",
    "email_subject",
    "email_from_address",
    "email_html_template",
)
# Template-syntax fields, and whether each renders as HTML.
TEMPLATE_FIELDS: dict[str, bool] = {
    "message_title": False,
    "message_body": False,
    "short_message_body": False,
    "email_subject": False,
    "email_html_template": True,
}


def _email(heading: str, inner: str, *, button_url: str = "", button_label: str = "", button_if: str = "") -> str:
    """One shared email layout; only tags and attributes of the §8.3 allowlist."""
    button = ""
    if button_url:
        button = (
            f'{{% if {button_if or button_url} %}}<p style="margin:24px 0">'
            f'<a href="{{% absolute_url {button_url} %}}" style="background:#2563eb;color:#ffffff;padding:12px 20px;'
            f'border-radius:6px;text-decoration:none;display:inline-block">{button_label}</a></p>{{% endif %}}\n'
        )
    return (
        '<div style="font-family:Arial,Helvetica,sans-serif;max-width:600px;margin:0 auto;color:#1f2937">\n'
        '<main style="padding:24px">\n'
        '{% if logo_url %}<p><img src="{{ logo_url }}" alt="{{ site_name }}" height="40"></p>{% endif %}\n'
        f'<h1 style="font-size:22px;margin:0 0 16px">{heading}</h1>\n'
        f"{inner}\n"
        f"{button}"
        "</main>\n"
        '<footer style="padding:16px 24px;font-size:12px;color:#6b7280;border-top:1px solid #e5e7eb">\n'
        "<p>&copy; {{ current_year }} {{ platform_name }}"
        '{% if support_email %} &middot; Questions? <a href="mailto:{{ support_email }}">{{ support_email }}</a>'
        "{% endif %}</p>\n"
        '{% if unsubscribe_url %}<p><a href="{{ unsubscribe_url }}">Unsubscribe from these emails</a></p>'
        "{% endif %}\n"
        "</footer>\n"
        "</div>\n"
    )


@dataclass(frozen=True)
class TypeDefault:
    type: str
    category: str
    trigger: str
    name: str
    description: str
    message_title: str
    message_body: str
    short_message_body: str
    email_subject: str
    email_html_template: str
    channels: tuple[str, ...]
    spas: tuple[str, ...]
    # Variables this type provides beyond the globals, with descriptions.
    available_context: dict[str, str]
    # Realistic values for previews in the admin and the docs.
    sample_context: dict = field(default_factory=dict)
    # A critical type reaches the user whatever their opt-outs say.
    critical: bool = False
    enabled_by_default: bool = True
    email_from_address: str = ""
    periodic_config: dict | None = None
    policy_config: dict | None = None
    human_support_config: dict | None = None
    # Channel fallback and escalation (see templates_app.services.configs); none shipped.
    delivery_policy: dict | None = None

    @property
    def system_managed(self) -> bool:
        return self.type in SYSTEM_MANAGED_TYPES

    def content(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "message_title": self.message_title,
            "message_body": self.message_body,
            "short_message_body": self.short_message_body,
            "email_subject": self.email_subject,
            "email_from_address": self.email_from_address,
            "email_html_template": self.email_html_template,
            "channels": sorted(self.channels),
            "spas": sorted(self.spas),
        }

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.content(), sort_keys=True).encode()).hexdigest()


def _ctx(**variables: str) -> dict[str, str]:
    """available_context: the recipient's username first, then the type's own variables."""
    return {"username": USER_VARIABLES["username"], **variables, "site_name": "Platform display name"}


DEFAULT_PERIODIC_CONFIG = {
    "learner_scope": "ACTIVE_LEARNERS",
    "report_period_days": 7,
    "frequency": "WEEKLY",
    "custom_interval_days": None,
    "execution_time": "09:00",
    "timezone": "UTC",
    "mentors": [],
}
DEFAULT_POLICY_CONFIG = {"enabled_policies": [], "notify_on_assignment": True, "notify_on_removal": True}
DEFAULT_HUMAN_SUPPORT_CONFIG = {"recipient_mode": "platform_admins_and_mentor_owner", "custom_recipients": []}

_BENEFITS_TEXT = "{% for benefit in benefits %}\n- {{ benefit }}{% endfor %}"
_BENEFITS_HTML = "{% if benefits %}<ul>{% for benefit in benefits %}<li>{{ benefit }}</li>{% endfor %}</ul>{% endif %}"

TYPES: tuple[TypeDefault, ...] = (
    TypeDefault(
        type="USER_NOTIF_USER_REGISTRATION",
        category="User",
        trigger="User account created",
        name="User Registration",
        description="Welcomes new users to the platform",
        message_title="Welcome to {{ site_name }}, {{ username }}!",
        message_body=(
            "Hi {{ username }},\n\n"
            "{{ welcome_message|default:'Your account is ready.' }}\n"
            "{% if next_steps %}\nNext steps: {{ next_steps }}\n{% endif %}"
            "\nSign in: {{ login_url }}"
        ),
        short_message_body="Welcome to {{ site_name }}! Your account is ready.",
        email_subject="Welcome to {{ site_name }}",
        email_html_template=_email(
            "Welcome, {{ username }}!",
            "<p>{{ welcome_message|default:'Your account is ready.' }}</p>\n"
            "{% if next_steps %}<p><strong>Next steps:</strong> {{ next_steps }}</p>{% endif %}",
            button_url="login_url",
            button_label="Sign in",
        ),
        channels=(EMAIL, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            welcome_message="Welcome message",
            next_steps="Next-step instructions",
            login_url=USER_VARIABLES["login_url"],
        ),
        sample_context={
            "welcome_message": "We are glad you joined us.",
            "next_steps": "Complete your profile and pick your first course.",
        },
    ),
    TypeDefault(
        type="APP_REGISTRATION",
        category="User",
        trigger="User registers via a linked application",
        name="App Registration",
        description="Welcome message with app name and benefits",
        message_title="Welcome to {{ app_name|default:site_name }}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{{ welcome_message|default:'Thanks for signing up.' }}"
            "{% if benefits %}\n\nWith {{ app_name|default:site_name }} you can:" + _BENEFITS_TEXT + "{% endif %}"
            "{% if closing_message %}\n\n{{ closing_message }}{% endif %}"
        ),
        short_message_body="Welcome to {{ app_name|default:site_name }}!",
        email_subject="Welcome to {{ app_name|default:site_name }}",
        email_html_template=_email(
            "Welcome to {{ app_name|default:site_name }}",
            "<p>Hi {{ username }},</p>\n<p>{{ welcome_message|default:'Thanks for signing up.' }}</p>\n"
            "{% if benefits %}<p>With {{ app_name|default:site_name }} you can:</p>" + _BENEFITS_HTML + "{% endif %}\n"
            "{% if closing_message %}<p>{{ closing_message }}</p>{% endif %}",
            button_url="login_url",
            button_label="Get started",
        ),
        channels=(EMAIL, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            app_name="Application name",
            welcome_message="Welcome message text",
            benefits="List of benefit strings",
            closing_message="Closing message text",
        ),
        sample_context={
            "app_name": "Acme Mentor",
            "welcome_message": "Your AI mentor is ready to help.",
            "benefits": ["Ask questions any time", "Get study plans", "Track your progress"],
            "closing_message": "Happy learning!",
        },
    ),
    TypeDefault(
        type="USER_NOTIF_COURSE_ENROLLMENT",
        category="Learning",
        trigger="Enrolled in a course",
        name="Course Enrollment",
        description="Sent when a learner enrolls in a course",
        message_title="You have been enrolled in {{ course_name }}",
        message_body="Hi {{ username }},\nYou have been enrolled in {{ course_name }}.",
        short_message_body="You have been enrolled in {{ course_name }}.",
        email_subject="Welcome to {{ course_name }}",
        email_html_template=_email(
            "You're enrolled!",
            "<p>Hi {{ username }},</p>\n<p>You have been enrolled in <strong>{{ course_name }}</strong>.</p>",
            button_url="login_url",
            button_label="Start learning",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(course_name="Name of the course"),
        sample_context={"course_name": "Introduction to Data Science"},
    ),
    TypeDefault(
        type="USER_NOTIF_COURSE_COMPLETION",
        category="Learning",
        trigger="Completed a course",
        name="Course Completion",
        description="Congratulates on course completion with certificate link",
        message_title="Congratulations on completing {{ course_name }}!",
        message_body=(
            "Hi {{ username }},\n\n"
            "You completed {{ course_name }}{% if completion_date %} on {{ completion_date }}{% endif %}. Well done!"
            "{% if certificate_url %}\n\nYour certificate: {{ certificate_url }}{% endif %}"
        ),
        short_message_body="You completed {{ course_name }}. Congratulations!",
        email_subject="You completed {{ course_name }}",
        email_html_template=_email(
            "Congratulations, {{ username }}!",
            "<p>You completed <strong>{{ course_name }}</strong>"
            "{% if completion_date %} on {{ completion_date }}{% endif %}. Well done!</p>",
            button_url="certificate_url",
            button_label="View your certificate",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            course_name="Course name", completion_date="Date of completion", certificate_url="Certificate URL"
        ),
        sample_context={
            "course_name": "Python Fundamentals",
            "completion_date": "April 10, 2026",
            "certificate_url": "https://skills.example.com/certificates/abc123",
        },
    ),
    TypeDefault(
        type="USER_NOTIF_CREDENTIALS",
        category="Learning",
        trigger="Credential issued",
        name="Credential Issued",
        description="Notifies learner of new credential with credential URL",
        message_title="You earned a credential for {{ item_name }}",
        message_body=(
            "Dear {{ username }}, You have earned a credential for completing {{ item_name }}. "
            "View your credential here: {{ credential_url }} © {{ current_year }} {{ platform_name }}"
        ),
        short_message_body="Your credential for {{ item_name }} is ready.",
        email_subject="Your credential for {{ item_name }} is ready",
        email_html_template=_email(
            "You earned a credential",
            "<p>Dear {{ username }},</p>\n<p>You have earned a credential for completing "
            "<strong>{{ item_name }}</strong>.</p>",
            button_url="credential_url",
            button_label="View your credential",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            item_name="Course or program name", credential_url="Full credential URL", credential_path="Credential path"
        ),
        sample_context={
            "item_name": "Python Fundamentals",
            "credential_url": "https://skills.example.com/credentials/abc123",
            "credential_path": "/credentials/abc123",
        },
    ),
    TypeDefault(
        type="USER_NOTIF_LEARNER_PROGRESS",
        category="Learning",
        trigger="Periodic progress summary",
        name="Learner Progress",
        description="Delivers progress digest with courses, time spent, credentials",
        message_title="Your learning progress on {{ site_name }}",
        message_body=(
            "Hi {{ username }}, here is your progress summary.\n\n"
            "Courses:{% for course in courses_taken %}\n- {% course_line course %}"
            "{% empty %} no course activity this period.{% endfor %}\n"
            "Videos watched: {{ videos_watched_count|default:0 }}\n"
            "Time spent: {{ total_time_spent|hours }}\n"
            "Credentials earned:{% for credential in credentials %}\n- {% item_name credential %}"
            "{% empty %} none yet, keep going!{% endfor %}"
        ),
        short_message_body=(
            "{% plural courses_taken|length 'course' 'courses' %}, {{ total_time_spent|hours }} of learning"
            " and {% plural credentials|length 'credential' 'credentials' %} this period."
        ),
        email_subject="Your learning progress on {{ site_name }}",
        email_html_template=_email(
            "Your progress, {{ username }}",
            '<h2 style="font-size:16px">Courses</h2>\n'
            '{% if courses_taken %}<table style="width:100%;border-collapse:collapse">'
            '<thead><tr><th style="text-align:left">Course</th><th style="text-align:right">Progress</th></tr></thead>'
            "<tbody>{% for course in courses_taken %}<tr><td>{% item_name course %}</td>"
            '<td style="text-align:right">{% course_progress course %}</td></tr>{% endfor %}</tbody></table>'
            "{% else %}<p>No course activity this period.</p>{% endif %}\n"
            "<p>Videos watched: <strong>{{ videos_watched_count|default:0 }}</strong><br>"
            "Time spent: <strong>{{ total_time_spent|hours }}</strong></p>\n"
            '<h2 style="font-size:16px">Credentials</h2>\n'
            "{% if credentials %}<ul>{% for credential in credentials %}<li>{% item_name credential %}</li>"
            "{% endfor %}</ul>{% else %}<p>None yet, keep going!</p>{% endif %}",
            button_url="skills_url",
            button_label="Continue learning",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            courses_taken="List of courses (names, or objects with name and progress 0-100)",
            videos_watched_count="Videos watched",
            total_time_spent="Total time spent (hours)",
            credentials="Credentials earned (names, or objects with name)",
        ),
        sample_context={
            "courses_taken": [
                {"name": "Python Fundamentals", "progress": 80},
                {"name": "Introduction to Data Science", "progress": 35},
            ],
            "videos_watched_count": 12,
            "total_time_spent": 5.5,
            "credentials": ["SQL Basics"],
        },
    ),
    TypeDefault(
        type="USER_NOTIF_USER_INACTIVITY",
        category="Engagement",
        trigger="User inactive for configured period",
        name="User Inactivity",
        description="Re-engagement notification with inactivity details",
        message_title="We miss you on {{ site_name }}",
        message_body=(
            "Hi {{ username }},\n\n"
            "It has been {% plural days_inactive 'day' 'days' %} since your last visit"
            "{% if last_activity_date %} ({{ last_activity_date }}){% endif %}. "
            "Pick up where you left off: {{ login_url }}"
        ),
        short_message_body="It has been {% plural days_inactive 'day' 'days' %}. Pick up where you left off!",
        email_subject="We miss you, {{ username }}",
        email_html_template=_email(
            "We miss you, {{ username }}",
            "<p>It has been <strong>{% plural days_inactive 'day' 'days' %}</strong> since your last visit"
            "{% if last_activity_date %} ({{ last_activity_date }}){% endif %}.</p>\n"
            "<p>Your courses are waiting for you.</p>",
            button_url="login_url",
            button_label="Pick up where you left off",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(
            days_inactive="Days inactive",
            last_activity_date="Last activity date",
            login_url=USER_VARIABLES["login_url"],
        ),
        sample_context={"days_inactive": 14, "last_activity_date": "March 28, 2026"},
    ),
    TypeDefault(
        type="PLATFORM_INVITATION",
        category="Invitation",
        trigger="Admin sends platform invite",
        name="Platform Invitation",
        description="Invites user to join the platform with redirect link",
        message_title="You are invited to join {{ site_name }}",
        message_body=(
            "Hello,\n\nYou have been invited to join {{ site_name }}. "
            "Accept the invitation: {% absolute_url redirect_to|default:login_url %}"
        ),
        short_message_body="You are invited to join {{ site_name }}.",
        email_subject="You are invited to join {{ site_name }}",
        email_html_template=_email(
            "You are invited to join {{ site_name }}",
            "<p>Hello,</p>\n<p>You have been invited to join <strong>{{ site_name }}</strong>.</p>",
            button_url="redirect_to|default:login_url",
            button_label="Accept invitation",
        ),
        channels=(EMAIL,),
        spas=("admin",),
        available_context=_ctx(redirect_to="Redirect destination after signup", login_url=USER_VARIABLES["login_url"]),
        sample_context={"redirect_to": "https://acme.example.com/signup?invite=xyz"},
        critical=True,
    ),
    TypeDefault(
        type="COURSE_INVITATION",
        category="Invitation",
        trigger="Admin sends course invite",
        name="Course Invitation",
        description="Invites user to a course with enrollment link",
        message_title="You are invited to {{ course_name }}",
        message_body=(
            "Hello,\n\nYou have been invited to take {{ course_name }} on {{ site_name }}."
            "{% if redirect_to %} Enroll here: {% absolute_url redirect_to %}{% endif %}"
        ),
        short_message_body="You are invited to {{ course_name }}.",
        email_subject="You are invited to {{ course_name }}",
        email_html_template=_email(
            "You are invited to {{ course_name }}",
            "<p>Hello,</p>\n<p>You have been invited to take <strong>{{ course_name }}</strong> "
            "on {{ site_name }}.</p>",
            button_url="redirect_to",
            button_label="Enroll now",
        ),
        channels=(EMAIL,),
        spas=("admin",),
        available_context=_ctx(course_name="Course name", redirect_to="Enrollment link"),
        sample_context={"course_name": "Introduction to Data Science", "redirect_to": "/courses/ds-101/enroll"},
        critical=True,
    ),
    TypeDefault(
        type="PROGRAM_INVITATION",
        category="Invitation",
        trigger="Admin sends program invite",
        name="Program Invitation",
        description="Invites user to a program with enrollment link",
        message_title="You are invited to {{ program_name }}",
        message_body=(
            "Hello,\n\nYou have been invited to join the {{ program_name }} program on {{ site_name }}."
            "{% if redirect_to %} Enroll here: {% absolute_url redirect_to %}{% endif %}"
        ),
        short_message_body="You are invited to the {{ program_name }} program.",
        email_subject="You are invited to {{ program_name }}",
        email_html_template=_email(
            "You are invited to {{ program_name }}",
            "<p>Hello,</p>\n<p>You have been invited to join the <strong>{{ program_name }}</strong> program "
            "on {{ site_name }}.</p>",
            button_url="redirect_to",
            button_label="Enroll now",
        ),
        channels=(EMAIL,),
        spas=("admin",),
        available_context=_ctx(program_name="Program name", redirect_to="Enrollment link"),
        sample_context={"program_name": "Data Analyst Track", "redirect_to": "/programs/data-analyst/enroll"},
        critical=True,
    ),
    TypeDefault(
        type="COURSE_LICENSE_ASSIGNMENT",
        category="License",
        trigger="Course license assigned to user",
        name="Course License Assignment",
        description="Notifies user of course access via license",
        message_title="You now have access to {{ course_name }}",
        message_body="Hi {{ username }},\n\nA license for {{ course_name }} has been assigned to you. Start any time.",
        short_message_body="You now have access to {{ course_name }}.",
        email_subject="You now have access to {{ course_name }}",
        email_html_template=_email(
            "You now have access to {{ course_name }}",
            "<p>Hi {{ username }},</p>\n<p>A license for <strong>{{ course_name }}</strong> has been assigned "
            "to you. Start any time.</p>",
            button_url="login_url",
            button_label="Start the course",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(course_name="Course name"),
        sample_context={"course_name": "Introduction to Data Science"},
    ),
    TypeDefault(
        type="COURSE_LICENSE_GROUP_ASSIGNMENT",
        category="License",
        trigger="Course license assigned to user group",
        name="Course License Group Assignment",
        description="Notifies group members of course access",
        message_title="Your group now has access to {{ course_name }}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if group_name %}Your group {{ group_name }}{% else %}Your group{% endif %} has been given access "
            "to {{ course_name }}. Start any time."
        ),
        short_message_body="Your group now has access to {{ course_name }}.",
        email_subject="Your group now has access to {{ course_name }}",
        email_html_template=_email(
            "New course for your group",
            "<p>Hi {{ username }},</p>\n<p>{% if group_name %}Your group <strong>{{ group_name }}</strong>"
            "{% else %}Your group{% endif %} has been given access to <strong>{{ course_name }}</strong>.</p>",
            button_url="login_url",
            button_label="Start the course",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(course_name="Course name", group_name="User group name"),
        sample_context={"course_name": "Introduction to Data Science", "group_name": "Analytics team"},
    ),
    TypeDefault(
        type="PROGRAM_LICENSE_ASSIGNMENT",
        category="License",
        trigger="Program license assigned to user",
        name="Program License Assignment",
        description="Notifies user of program access via license",
        message_title="You now have access to {{ program_name }}",
        message_body=(
            "Hi {{ username }},\n\nA license for the {{ program_name }} program has been assigned to you. "
            "Start any time."
        ),
        short_message_body="You now have access to {{ program_name }}.",
        email_subject="You now have access to {{ program_name }}",
        email_html_template=_email(
            "You now have access to {{ program_name }}",
            "<p>Hi {{ username }},</p>\n<p>A license for the <strong>{{ program_name }}</strong> program has "
            "been assigned to you.</p>",
            button_url="login_url",
            button_label="Start the program",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(program_name="Program name"),
        sample_context={"program_name": "Data Analyst Track"},
    ),
    TypeDefault(
        type="PROGRAM_LICENSE_GROUP_ASSIGNMENT",
        category="License",
        trigger="Program license assigned to user group",
        name="Program License Group Assignment",
        description="Notifies group members of program access",
        message_title="Your group now has access to {{ program_name }}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if group_name %}Your group {{ group_name }}{% else %}Your group{% endif %} has been given access "
            "to the {{ program_name }} program. Start any time."
        ),
        short_message_body="Your group now has access to {{ program_name }}.",
        email_subject="Your group now has access to {{ program_name }}",
        email_html_template=_email(
            "New program for your group",
            "<p>Hi {{ username }},</p>\n<p>{% if group_name %}Your group <strong>{{ group_name }}</strong>"
            "{% else %}Your group{% endif %} has been given access to the <strong>{{ program_name }}</strong> "
            "program.</p>",
            button_url="login_url",
            button_label="Start the program",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(program_name="Program name", group_name="User group name"),
        sample_context={"program_name": "Data Analyst Track", "group_name": "Analytics team"},
    ),
    TypeDefault(
        type="USER_LICENSE_ASSIGNMENT",
        category="License",
        trigger="Platform user license assigned",
        name="User License Assignment",
        description="Notifies user of platform license with benefits",
        message_title="Your {{ site_name }} license is active",
        message_body=(
            "Hi {{ username }},\n\n{{ welcome_message|default:'A platform license has been assigned to you.' }}"
            "{% if benefits %}\n\nYour license includes:" + _BENEFITS_TEXT + "{% endif %}"
            "{% if closing_message %}\n\n{{ closing_message }}{% endif %}"
        ),
        short_message_body="Your {{ site_name }} license is active.",
        email_subject="Your {{ site_name }} license is active",
        email_html_template=_email(
            "Your license is active",
            "<p>Hi {{ username }},</p>\n<p>{{ welcome_message|default:'A platform license has been assigned to "
            "you.' }}</p>\n{% if benefits %}<p>Your license includes:</p>" + _BENEFITS_HTML + "{% endif %}\n"
            "{% if closing_message %}<p>{{ closing_message }}</p>{% endif %}",
            button_url="login_url",
            button_label="Explore the platform",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(welcome_message="Welcome text", benefits="Benefit list", closing_message="Closing text"),
        sample_context={
            "welcome_message": "Your organisation gave you full access.",
            "benefits": ["Unlimited courses", "AI mentors", "Verified credentials"],
            "closing_message": "Enjoy!",
        },
    ),
    TypeDefault(
        type="USER_LICENSE_GROUP_ASSIGNMENT",
        category="License",
        trigger="Platform user license assigned to group",
        name="User License Group Assignment",
        description="Notifies group members of platform license",
        message_title="Your group has {{ site_name }} licenses",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if group_name %}Your group {{ group_name }}{% else %}Your group{% endif %} has been given "
            "{{ site_name }} licenses, and yours is active."
            "{% if benefits %}\n\nYour license includes:" + _BENEFITS_TEXT + "{% endif %}"
        ),
        short_message_body="Your {{ site_name }} license is active.",
        email_subject="Your {{ site_name }} license is active",
        email_html_template=_email(
            "Your license is active",
            "<p>Hi {{ username }},</p>\n<p>{% if group_name %}Your group <strong>{{ group_name }}</strong>"
            "{% else %}Your group{% endif %} has been given {{ site_name }} licenses, and yours is active.</p>\n"
            "{% if benefits %}<p>Your license includes:</p>" + _BENEFITS_HTML + "{% endif %}",
            button_url="login_url",
            button_label="Explore the platform",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("skills",),
        available_context=_ctx(group_name="User group name", benefits="Benefit list"),
        sample_context={"group_name": "Analytics team", "benefits": ["Unlimited courses", "AI mentors"]},
    ),
    TypeDefault(
        type="ROLE_CHANGE",
        category="Admin",
        trigger="User's platform role changed",
        name="Role Change",
        description="Notifies user of role promotion or demotion",
        message_title="{% if demoted %}Your role on {{ site_name }} has changed{% else %}You are now {{ role }}"
        " on {{ site_name }}{% endif %}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if demoted %}Your {{ role }} role has been removed.{% else %}You have been granted the {{ role }} "
            "role.{% endif %} If you did not expect this change, contact {{ support_email|default:'your admin' }}."
        ),
        short_message_body="{% if demoted %}Your {{ role }} role has been removed.{% else %}You have been granted the"
        " {{ role }} role.{% endif %}",
        email_subject="Your role on {{ site_name }} has changed",
        email_html_template=_email(
            "Your role has changed",
            "<p>Hi {{ username }},</p>\n<p>{% if demoted %}Your <strong>{{ role }}</strong> role has been "
            "removed.{% else %}You have been granted the <strong>{{ role }}</strong> role.{% endif %}</p>\n"
            "<p>If you did not expect this change, contact {{ support_email|default:'your admin' }}.</p>",
        ),
        channels=(EMAIL, IN_APP),
        spas=("admin",),
        available_context=_ctx(role="New role name", demoted="True if user was demoted"),
        sample_context={"role": "Instructor", "demoted": False},
        critical=True,
    ),
    TypeDefault(
        type="ADMIN_NOTIF_COURSE_ENROLLMENT",
        category="Admin",
        trigger="User enrolls in a course",
        name="Admin Course Enrollment",
        description="Alerts admins with student name, email, and course",
        message_title="New enrollment in {{ course_name }}",
        message_body="{{ student_name }} ({{ student_email }}) enrolled in {{ course_name }}.",
        short_message_body="{{ student_name }} enrolled in {{ course_name }}.",
        email_subject="New enrollment in {{ course_name }}",
        email_html_template=_email(
            "New enrollment",
            '<table style="border-collapse:collapse"><tbody>'
            '<tr><th style="text-align:left;padding-right:12px">Student</th><td>{{ student_name }}</td></tr>'
            '<tr><th style="text-align:left;padding-right:12px">Email</th><td>{{ student_email }}</td></tr>'
            '<tr><th style="text-align:left;padding-right:12px">Course</th><td>{{ course_name }}</td></tr>'
            "</tbody></table>",
        ),
        channels=(EMAIL, IN_APP),
        spas=("admin",),
        available_context=_ctx(
            course_name="Course name", student_name="Enrolled student's name", student_email="Enrolled student's email"
        ),
        sample_context={
            "course_name": "Introduction to Data Science",
            "student_name": "Jane Doe",
            "student_email": "jane@example.com",
        },
    ),
    TypeDefault(
        type="POLICY_ASSIGNMENT",
        category="RBAC",
        trigger="RBAC policy assigned or removed",
        name="Policy Assignment",
        description="Notifies user of role assignment/removal with resources",
        message_title="{% if assigned %}You were given the {{ role_name }} role{% else %}Your {{ role_name }} role"
        " was removed{% endif %}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if assigned %}You have been assigned the {{ role_name }} role on {{ site_name }}."
            "{% else %}The {{ role_name }} role has been removed from your account on {{ site_name }}.{% endif %}"
            "{% if resources %}\n\nAffected resources:{% for resource in resources %}\n- {% item_name resource %}"
            "{% endfor %}{% endif %}"
        ),
        short_message_body="{% if assigned %}You were given the {{ role_name }} role.{% else %}Your {{ role_name }}"
        " role was removed.{% endif %}",
        email_subject="{% if assigned %}New role: {{ role_name }}{% else %}Role removed: {{ role_name }}{% endif %}",
        email_html_template=_email(
            "{% if assigned %}New role: {{ role_name }}{% else %}Role removed: {{ role_name }}{% endif %}",
            "<p>Hi {{ username }},</p>\n"
            "<p>{% if assigned %}You have been assigned the <strong>{{ role_name }}</strong> role on "
            "{{ site_name }}.{% else %}The <strong>{{ role_name }}</strong> role has been removed from your account "
            "on {{ site_name }}.{% endif %}</p>\n"
            "{% if resources %}<p>Affected resources:</p><ul>{% for resource in resources %}"
            "<li>{% item_name resource %}</li>{% endfor %}</ul>{% endif %}",
        ),
        channels=(EMAIL, IN_APP),
        spas=("admin",),
        available_context=_ctx(
            role_name="Role being assigned/removed",
            assigned="True if assigned, False if removed",
            resources="List of affected resources",
        ),
        sample_context={"role_name": "Course Editor", "assigned": True, "resources": ["Python Fundamentals"]},
        critical=True,
        policy_config=DEFAULT_POLICY_CONFIG,
    ),
    TypeDefault(
        type="HUMAN_SUPPORT_NOTIFICATION",
        category="Support",
        trigger="Human support ticket created",
        name="Human Support Request",
        description="Alerts support staff with ticket details and chat link",
        message_title="Support request: {{ ticket_subject }}",
        message_body=(
            "{{ user_name|default:'A learner' }}{% if user_email %} ({{ user_email }}){% endif %} asked for human "
            "support{% if mentor_name %} while chatting with {{ mentor_name }}{% endif %}.\n\n"
            "Subject: {{ ticket_subject }}\n"
            "Status: {{ ticket_status|default:'open' }}\n"
            "{% if ticket_description %}\n{{ ticket_description }}\n{% endif %}"
            "{% if template_content %}\n{{ template_content }}\n{% endif %}"
            "{% if chat_link %}\nOpen the conversation: {{ chat_link }}{% endif %}"
        ),
        short_message_body="{{ user_name|default:'A learner' }} needs help: {{ ticket_subject }}",
        email_subject="[{{ site_name }}] Support request: {{ ticket_subject }}",
        email_html_template=_email(
            "New support request",
            "<p><strong>{{ user_name|default:'A learner' }}</strong>{% if user_email %} "
            '(<a href="mailto:{{ user_email }}">{{ user_email }}</a>){% endif %} asked for human support'
            "{% if mentor_name %} while chatting with {{ mentor_name }}{% endif %}.</p>\n"
            '<table style="border-collapse:collapse"><tbody>'
            '<tr><th style="text-align:left;padding-right:12px">Subject</th><td>{{ ticket_subject }}</td></tr>'
            '<tr><th style="text-align:left;padding-right:12px">Status</th>'
            "<td>{{ ticket_status|default:'open' }}</td></tr>"
            '{% if session_id %}<tr><th style="text-align:left;padding-right:12px">Session</th>'
            "<td>{{ session_id }}</td></tr>{% endif %}"
            "</tbody></table>\n"
            "{% if ticket_description %}<blockquote>{{ ticket_description|linebreaksbr }}</blockquote>{% endif %}\n"
            "{% if template_content %}<p>{{ template_content|linebreaksbr }}</p>{% endif %}",
            button_url="chat_link",
            button_label="Open the conversation",
        ),
        channels=(EMAIL, IN_APP),
        spas=("mentor", "admin"),
        available_context={
            "ticket_subject": "Ticket subject",
            "ticket_description": "Ticket description",
            "ticket_status": "Ticket status",
            "user_name": "User who created the ticket",
            "user_email": "User's email",
            "mentor_name": "Mentor name",
            "platform_key": "Platform identifier",
            "session_id": "Chat session UUID",
            "chat_link": "URL to chat transcript",
            "mentor_unique_id": "Unique identifier of the mentor",
            "template_content": "Optional custom content (rendered if provided)",
            "site_name": "Platform display name",
        },
        sample_context={
            "ticket_subject": "Cannot submit my assignment",
            "ticket_description": "The upload button does nothing.",
            "ticket_status": "open",
            "user_name": "Jane Doe",
            "user_email": "jane@example.com",
            "mentor_name": "Study Buddy",
            "session_id": "7f1c2f8e-4a57-4d3b-9a0e-2b5f1c9d8e11",
            "chat_link": "https://acme.example.com/mentor/chat/7f1c2f8e",
            "mentor_unique_id": "study-buddy",
        },
        critical=True,
        human_support_config=DEFAULT_HUMAN_SUPPORT_CONFIG,
    ),
    TypeDefault(
        type="PROACTIVE_LEARNER_NOTIFICATION",
        category="AI",
        trigger="Scheduled",
        name="Proactive Learner Notification",
        description="AI-generated personalized learning recommendations",
        message_title="{{ mentor_name|default:site_name }} has a suggestion for you",
        message_body=(
            "Hi {{ student_name|default:username }},\n\n{{ ai_recommendation }}\n\n"
            "— {{ mentor_name|default:site_name }}"
        ),
        short_message_body="{{ mentor_name|default:site_name }}: {{ ai_recommendation|truncatechars:140 }}",
        email_subject="Your learning update from {{ mentor_name|default:site_name }}",
        email_html_template=_email(
            "Hi {{ student_name|default:username }},",
            "<p>{{ ai_recommendation|linebreaksbr }}</p>\n<p>&mdash; {{ mentor_name|default:site_name }}</p>",
            button_url="skills_url",
            button_label="Continue learning",
        ),
        channels=(EMAIL, PUSH, IN_APP),
        spas=("mentor", "skills"),
        available_context={
            "student_name": "Learner's display name",
            "student_email": "Learner's email",
            "mentor_name": "Mentor name",
            "ai_recommendation": "AI-generated recommendation text",
            "username": "Learner's username",
            "platform_key": "Platform identifier",
            "mentor_unique_id": "Unique identifier of the mentor",
            "site_name": "Platform display name",
        },
        sample_context={
            "student_name": "Jane Doe",
            "student_email": "jane@example.com",
            "mentor_name": "Study Buddy",
            "ai_recommendation": "You spent 3 hours on Python Fundamentals this week. Finish module 4 next.",
            "mentor_unique_id": "study-buddy",
        },
        enabled_by_default=False,
        periodic_config=DEFAULT_PERIODIC_CONFIG,
    ),
    TypeDefault(
        type="REPORT_COMPLETED",
        category="Admin",
        trigger="Async report finishes processing",
        name="Report Completed",
        description="Notifies user with report status and download URL",
        message_title="{% if report_status == 'completed' %}Your report {{ report_name }} is ready"
        "{% elif report_status == 'cancelled' %}Your report {{ report_name }} was cancelled"
        "{% else %}Your report {{ report_name }} failed{% endif %}",
        message_body=(
            "Hi {{ username }},\n\n"
            "{% if report_status == 'completed' %}Your report {{ report_name }} is ready."
            "{% if download_url %} Download it here: {{ download_url }}{% endif %}"
            "{% elif report_status == 'cancelled' %}Your report {{ report_name }} was cancelled before it finished."
            "{% else %}Your report {{ report_name }} could not be generated. Please try again, or contact "
            "{{ support_email|default:'support' }} if it keeps failing.{% endif %}"
        ),
        short_message_body="Report {{ report_name }}: {{ report_status|default:'completed' }}",
        email_subject="Report {{ report_name }}: {{ report_status|default:'completed'|capfirst }}",
        email_html_template=_email(
            "Report {{ report_name }}",
            "<p>Hi {{ username }},</p>\n"
            "{% if report_status == 'completed' %}<p>Your report <strong>{{ report_name }}</strong> is ready.</p>"
            "{% elif report_status == 'cancelled' %}<p>Your report <strong>{{ report_name }}</strong> was cancelled "
            "before it finished.</p>"
            "{% else %}<p>Your report <strong>{{ report_name }}</strong> could not be generated. Please try again"
            "{% if support_email %}, or contact {{ support_email }} if it keeps failing{% endif %}.</p>{% endif %}",
            button_url="download_url",
            button_label="Download the report",
            button_if="download_url and report_status != 'error' and report_status != 'cancelled'",
        ),
        channels=(EMAIL, IN_APP),
        spas=("admin",),
        available_context=_ctx(
            report_name="Report display name",
            report_status="`completed`, `error`, or `cancelled`",
            download_url="Download URL (completed reports only)",
        ),
        sample_context={
            "report_name": "Monthly enrollments",
            "report_status": "completed",
            "download_url": "https://acme.example.com/reports/42/download",
        },
        critical=True,
    ),
    TypeDefault(
        type="CUSTOM_NOTIFICATION",
        category="Custom",
        trigger="Code-driven",
        name="Custom Notification",
        description="Platform-defined custom notification with custom targeting",
        message_title="{{ title|default:site_name }}",
        message_body="{{ message }}",
        short_message_body="{{ short_message|default:message|truncatechars:160 }}",
        email_subject="{{ title|default:site_name }}",
        email_html_template=_email("{{ title|default:site_name }}", "<p>{{ message|linebreaksbr }}</p>"),
        channels=(EMAIL, PUSH, IN_APP, SMS),
        spas=("admin",),
        available_context=_ctx(
            title="Notification title", message="Notification text", short_message="Short text for SMS and push"
        ),
        sample_context={"title": "Scheduled maintenance", "message": "The platform will be down on Sunday 02:00 UTC."},
    ),
)

BY_TYPE: dict[str, TypeDefault] = {t.type: t for t in TYPES}
SYSTEM_TYPES: tuple[str, ...] = tuple(t.type for t in TYPES)
CRITICAL_TYPES = frozenset(t.type for t in TYPES if t.critical)


def known_variables(notification_type: str, available_context: dict | None = None) -> set[str]:
    """Every variable a template of this type may use without a warning."""
    names = set(GLOBAL_VARIABLES) | set(USER_VARIABLES)
    default = BY_TYPE.get(notification_type)
    if default is not None:
        names |= set(default.available_context)
    if available_context:
        names |= set(available_context)
    return names


# --- digests ------------------------------------------------------------------------------
#
# A digest collects a type's events for one recipient over a window and sends
# them as one message per channel. Each digest-worthy type ships a default
# rule and a digest template here; a platform turns digesting on for a type
# with its own `DigestRule`, whose blank fields inherit these. Critical types
# are never digested (human support requests among them: each one is sent).

DIGEST_LEADING, DIGEST_TRAILING = "leading", "trailing"
# The fields of a digest template; they render with `items` (each event's
# context, oldest first) and `count` beside the usual globals.
DIGEST_TEMPLATE_FIELDS = ("message_title", "message_body", "short_message_body", "email_subject", "email_html_template")
# How many items a shipped digest lists before "and N more".
DIGEST_LISTED = 20


@dataclass(frozen=True)
class DigestDefault:
    type: str
    # A window of this many minutes (aligned to the clock: 60 is every full
    # hour), or daily at `daily_at` ("HH:MM") in the recipient's time zone.
    window_minutes: int | None
    daily_at: str | None
    mode: str
    # The channels collected into the digest; the type's other channels stay live.
    channels: tuple[str, ...]
    # A context value that splits a recipient's digests (one per course, say); "" for one per recipient.
    key_context: str
    message_title: str
    message_body: str
    short_message_body: str
    email_subject: str
    email_html_template: str

    def template(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in DIGEST_TEMPLATE_FIELDS}


def _digest_list(line: str) -> str:
    return (
        f'{{% for item in items|slice:":{DIGEST_LISTED}" %}}\n- {line}{{% endfor %}}'
        f"{{% if count > {DIGEST_LISTED} %}}\n…and {{{{ count|add:'-{DIGEST_LISTED}' }}}} more.{{% endif %}}"
    )


def _digest_html(line: str) -> str:
    return (
        f'<ul>{{% for item in items|slice:":{DIGEST_LISTED}" %}}<li>{line}</li>{{% endfor %}}</ul>'
        f"{{% if count > {DIGEST_LISTED} %}}<p>…and {{{{ count|add:'-{DIGEST_LISTED}' }}}} more.</p>{{% endif %}}"
    )


_ENROLL_LINE = "{{ item.student_name }} ({{ item.student_email }}) enrolled in {{ item.course_name }}"

DIGESTS: tuple[DigestDefault, ...] = (
    DigestDefault(
        type="ADMIN_NOTIF_COURSE_ENROLLMENT",
        window_minutes=60,
        daily_at=None,
        mode=DIGEST_TRAILING,
        channels=(EMAIL, SMS, PUSH),
        key_context="",
        message_title="{% plural count 'new enrollment' 'new enrollments' %} on {{ site_name }}",
        message_body="{% plural count 'new enrollment' 'new enrollments' %}:" + _digest_list(_ENROLL_LINE),
        short_message_body="{% plural count 'new enrollment' 'new enrollments' %} on {{ site_name }}.",
        email_subject="{% plural count 'new enrollment' 'new enrollments' %} on {{ site_name }}",
        email_html_template=_email("{% plural count 'new enrollment' 'new enrollments' %}", _digest_html(_ENROLL_LINE)),
    ),
    DigestDefault(
        type="USER_NOTIF_LEARNER_PROGRESS",
        window_minutes=None,
        daily_at="18:00",
        mode=DIGEST_TRAILING,
        channels=(EMAIL, SMS, PUSH),
        key_context="",
        message_title="Your learning progress on {{ site_name }}",
        message_body=(
            "Hi {{ username }}, {% plural count 'progress update' 'progress updates' %} since the last summary:"
            + _digest_list(
                "{% for course in item.courses_taken %}{% course_line course %}{% if not forloop.last %}, "
                "{% endif %}{% empty %}no course activity{% endfor %}"
            )
        ),
        short_message_body="{% plural count 'progress update' 'progress updates' %} on {{ site_name }}.",
        email_subject="Your learning progress on {{ site_name }}",
        email_html_template=_email(
            "Your progress, {{ username }}",
            "<p>{% plural count 'progress update' 'progress updates' %} since the last summary.</p>"
            + _digest_html(
                "{% for course in item.courses_taken %}{% item_name course %} "
                "({% course_progress course %}){% if not forloop.last %}, {% endif %}"
                "{% empty %}No course activity{% endfor %}"
            ),
            button_url="skills_url",
            button_label="Continue learning",
        ),
    ),
    DigestDefault(
        type="USER_NOTIF_USER_INACTIVITY",
        window_minutes=None,
        daily_at="09:00",
        mode=DIGEST_LEADING,
        channels=(EMAIL, SMS, PUSH),
        key_context="",
        message_title="We miss you on {{ site_name }}",
        message_body=(
            "Hi {{ username }},\n\nWe have reminded you {% plural count 'more time' 'more times' %} since our "
            "last message. Pick up where you left off: {{ login_url }}"
        ),
        short_message_body="Your courses on {{ site_name }} are waiting for you.",
        email_subject="We miss you, {{ username }}",
        email_html_template=_email(
            "We miss you, {{ username }}",
            "<p>Your courses are waiting for you.</p>",
            button_url="login_url",
            button_label="Pick up where you left off",
        ),
    ),
)
DIGEST_BY_TYPE: dict[str, DigestDefault] = {d.type: d for d in DIGESTS}

# A type without a shipped digest (a custom type, a bulk send's `system_alert`)
# gets this template: the count, and each item's `title` where it has one.
_GENERIC_LINE = "{{ item.title|default:item.message|default:'An update'|truncatechars:120 }}"
GENERIC_DIGEST_TEMPLATE: dict[str, str] = {
    "message_title": "{% plural count 'new notification' 'new notifications' %} on {{ site_name }}",
    "message_body": "You have {% plural count 'new notification' 'new notifications' %} on {{ site_name }}:"
    + _digest_list(_GENERIC_LINE),
    "short_message_body": "{% plural count 'new notification' 'new notifications' %} on {{ site_name }}.",
    "email_subject": "{% plural count 'new notification' 'new notifications' %} on {{ site_name }}",
    "email_html_template": _email(
        "{% plural count 'new notification' 'new notifications' %}",
        _digest_html(_GENERIC_LINE),
        button_url="login_url",
        button_label="Open {{ site_name }}",
    ),
}
