"""Parent and student pages: sign-in, parent sign-up, the Observing page and the Pairing page.

Each view parses the request, calls one service and renders the result; the
domain's errors become a form error, a polite 403 page or the 429
"too many tries" page. Which page a person sees depends on who they are in
the current root account: a student (a live student enrollment there) gets
the Pairing page, anyone else the Observing page; staff also get a link to
the admin.
"""

import math
from datetime import timedelta
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import make_password
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .forms import (
    INVALID_CODE_MESSAGE,
    AddStudentForm,
    InviteGuardianForm,
    LoginForm,
    SignupForm,
    tries_left_message,
)
from .models import (
    AuditSource,
    Enrollment,
    EnrollmentType,
    Login,
    ObservationLink,
    PairingCode,
    User,
)
from .request_context import actor_from_request
from .services import invitations as invitation_service
from .services import links as link_service
from .services import notifications, registration, rules, safeguarding, sso, verification
from .services import pairing as pairing_service
from .services.errors import (
    FeatureDisabled,
    LinkingError,
    LoginTaken,
    NotAuthorized,
    NotFound,
    RateLimited,
)
from .services.permissions import is_pairable_student

PENDING_CODE_KEY = "portal.pending_code"
PENDING_SIGNUP_KEY = "portal.pending_signup"
NEW_CODE_KEY = "portal.new_code"
LOGIN_BACKEND = "linking.auth_backends.LoginBackend"


# --- helpers -----------------------------------------------------------------


def _actor(request):
    return actor_from_request(request, AuditSource.PORTAL)


def _forbidden(request, message: str, *, title: str | None = None):
    return render(
        request,
        "linking/forbidden.html",
        {"title": title or _("This page is not for you"), "message": message},
        status=403,
    )


def rate_limited(request, error: RateLimited):
    """The 429 "too many tries" page, with Retry-After (the admin's sign-in page uses it too)."""
    minutes = max(1, math.ceil(error.retry_after / 60))
    context = {
        "minutes": minutes,
        # Shown in the school's time zone (linking.locale) and the reader's language.
        "until": timezone.now() + timedelta(seconds=error.retry_after),
    }
    response = render(request, "linking/rate_limited.html", context, status=429)
    response["Retry-After"] = str(error.retry_after)
    return response


def _is_student(request) -> bool:
    return is_pairable_student(request.user, request.root_account)


def school_member_required(view):
    """Signed in, with a live login of *this* school.

    A session made on another school's host (should a cookie ever be shared
    between hosts) is ended rather than trusted here.
    """

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        has_login = (
            Login.objects.active()
            .filter(user=request.user, root_account=request.root_account)
            .exists()
        )
        if not has_login:
            auth_logout(request)
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


def observer_page(view):
    """Signed-in people who are not students of this school (parents, guardians, staff)."""

    @school_member_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if _is_student(request):
            return _forbidden(
                request,
                _(
                    "This page is for parents and guardians. "
                    "Students create pairing codes on their Pairing page."
                ),
            )
        return view(request, *args, **kwargs)

    return wrapped


def student_page(view):
    """Signed-in students of this school."""

    @school_member_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not _is_student(request):
            return _forbidden(
                request,
                _(
                    "This page is for students. Parents and guardians add students "
                    "on their Observing page."
                ),
            )
        return view(request, *args, **kwargs)

    return wrapped


# --- signing in and out --------------------------------------------------------


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "linking/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except RateLimited as error:
            return rate_limited(request, error)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso_provider"] = sso.provider_for(self.request.root_account)
        return context


@school_member_required
@require_GET
def home(request):
    if _is_student(request):
        return redirect("linking:pairing")
    if request.user.is_staff:
        return render(request, "linking/staff_home.html")
    return redirect("linking:observing")


# --- parent sign-up -------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("linking:home")
    if not registration.observer_self_registration_open(request.root_account):
        return _signup_closed(request)
    if request.method == "GET":
        code = request.GET.get("code", "")[:32]
        form = SignupForm(initial={"codes": code})
        signin_url = reverse("linking:login")
        if code:
            # Signing in instead keeps the QR code's address, so the code is not retyped.
            after = reverse("linking:pair") + "?" + urlencode({"code": code})
            signin_url += "?" + urlencode({"next": after})
        return render(request, "linking/signup.html", {"form": form, "signin_url": signin_url})
    form = SignupForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            students = registration.check_observer_signup(
                email=data["email"],
                codes=data["codes"],
                root_account=request.root_account,
                actor=_actor(request),
            )
        except RateLimited as error:
            return rate_limited(request, error)
        except FeatureDisabled:
            return _signup_closed(request)
        except LinkingError as error:
            _signup_error(form, data, error)
        else:
            # Only a hash of the password waits in the (server-side) session.
            request.session[PENDING_SIGNUP_KEY] = {
                "name": data["name"],
                "email": data["email"],
                "password_hash": make_password(data["password1"]),
                "codes": data["codes"],
                "student_ids": [student.pk for student in students],
                "root_account_id": request.root_account.pk,
            }
            return redirect("linking:confirm_signup")
    context = {"form": form, "signin_url": reverse("linking:login")}
    return render(request, "linking/signup.html", context)


def _signup_error(form, data, error: LinkingError) -> None:
    """One of the sign-up's refusals as a message on the field it is about."""
    if isinstance(error, LoginTaken):
        message = _("There is already an account with this address here. Sign in instead.")
        if error.tries_left is not None:
            message = f"{message} {tries_left_message(error.tries_left)}"
        form.add_error("email", message)
    elif isinstance(error, registration.RegistrationCodeRefused):
        code = data["codes"][error.position]
        form.add_error("codes", f"{code}: {_refused_code_message(error.reason)}")
    else:
        form.add_error("codes", INVALID_CODE_MESSAGE)


@require_http_methods(["GET", "POST"])
def confirm_signup(request):
    """Sign-up's second step: "is this your student?"; the account and links are made on yes."""
    if request.user.is_authenticated:
        return redirect("linking:home")
    pending = request.session.get(PENDING_SIGNUP_KEY)
    if not pending or pending.get("root_account_id") != request.root_account.pk:
        request.session.pop(PENDING_SIGNUP_KEY, None)
        return redirect("linking:signup")
    if request.method == "GET":
        found = User.objects.live().in_bulk(pending["student_ids"])
        students = [found[pk] for pk in pending["student_ids"] if pk in found]
        return render(request, "linking/confirm_signup.html", {"students": students})
    request.session.pop(PENDING_SIGNUP_KEY, None)
    if "cancel" in request.POST:
        messages.info(request, _("Nothing was changed: no account was created."))
        return redirect("linking:signup")
    try:
        result = registration.register_observer(
            name=pending["name"],
            email=pending["email"],
            password_hash=pending["password_hash"],
            codes=pending["codes"],
            root_account=request.root_account,
            actor=_actor(request),
        )
    except RateLimited as error:
        return rate_limited(request, error)
    except FeatureDisabled:
        return _signup_closed(request)
    except LinkingError as error:
        # A code used or an address taken between the two steps: back to the
        # form, filled in again but for the password, which was never kept.
        form = SignupForm(
            {
                "name": pending["name"],
                "email": pending["email"],
                "codes": "\n".join(pending["codes"]),
            }
        )
        form.is_valid()
        _signup_error(form, {"codes": pending["codes"]}, error)
        context = {"form": form, "signin_url": reverse("linking:login")}
        return render(request, "linking/signup.html", context)
    auth_login(request, result.user, backend=LOGIN_BACKEND)
    verification.send_verification(
        user=result.user,
        root_account=request.root_account,
        base_url=request.build_absolute_uri("/"),
        actor=_actor(request),
        count=False,
    )
    waiting = {
        link.student_id
        for link in result.links
        if link.workflow_state == ObservationLink.State.PENDING
    }
    linked = [s.name for s in result.students if s.pk not in waiting]
    asked = [s.name for s in result.students if s.pk in waiting]
    if linked:
        messages.success(
            request,
            _("Welcome! You are now observing %(names)s.") % {"names": ", ".join(linked)},
        )
    if asked:
        messages.info(
            request,
            _("%(names)s must approve the link first.") % {"names": ", ".join(asked)},
        )
    return redirect("linking:observing")


def _signup_closed(request):
    return render(request, "linking/signup_closed.html", status=403)


@require_GET
def pair(request):
    """Where a pairing code's QR code leads: the parent's form, pre-filled."""
    code = request.GET.get("code", "")[:32]
    if not request.user.is_authenticated:
        return signup(request)
    if _is_student(request):
        return _forbidden(
            request,
            _("This pairing code is for a parent or guardian: open it on their phone or computer."),
        )
    form = AddStudentForm(initial={"code": code})
    return render(request, "linking/add_student.html", {"form": form})


# --- the Observing page (parents) -------------------------------------------------------


@observer_page
@require_GET
def observing(request):
    links = list(
        ObservationLink.objects.active()
        .filter(observer=request.user, root_account=request.root_account)
        .select_related("student")
        .order_by("student__sortable_name", "student_id")
    )
    enrollments = (
        Enrollment.objects.live()
        .filter(
            user=request.user,
            root_account=request.root_account,
            type=EnrollmentType.OBSERVER,
            associated_user_id__in=[link.student_id for link in links],
        )
        .select_related("course")
        .order_by("course__name", "course_id")
    )
    courses: dict[int, list] = {}
    for enrollment in enrollments:
        courses.setdefault(enrollment.associated_user_id, []).append(enrollment.course)
    students = [(link, courses.get(link.student_id, [])) for link in links]
    pending = (
        ObservationLink.objects.pending()
        .filter(observer=request.user, root_account=request.root_account)
        .select_related("student")
        .order_by("student__sortable_name", "student_id")
    )
    return render(
        request,
        "linking/observing.html",
        {
            "students": students,
            "pending": pending,
            "form": AddStudentForm(),
            "recent_notifications": notifications.recent_for(request.user, request.root_account),
        },
    )


@observer_page
@require_http_methods(["GET", "POST"])
def add_student(request):
    """Step 1: look the code up and remember it (server-side) for the confirm step."""
    if request.method == "GET":
        return render(request, "linking/add_student.html", {"form": AddStudentForm()})
    form = AddStudentForm(request.POST)
    if form.is_valid():
        try:
            found = pairing_service.find_code_for_observer(
                code=form.cleaned_data["code"],
                observer=request.user,
                root_account=request.root_account,
                actor=_actor(request),
            )
        except RateLimited as error:
            return rate_limited(request, error)
        except LinkingError as error:
            form.add_error("code", _refused_code_message(error))
        else:
            if link_service.observes(
                observer=request.user, student=found.student, root_account=request.root_account
            ):
                # The code stays unused: the student can give it to someone else.
                form.add_error(
                    "code",
                    _("You already observe %(name)s. This code was not used.")
                    % {"name": found.student.name},
                )
                return render(request, "linking/add_student.html", {"form": form})
            request.session[PENDING_CODE_KEY] = {
                "code": pairing_service.normalize_code(form.cleaned_data["code"]),
                "student_id": found.student_id,
                "root_account_id": request.root_account.pk,
            }
            return redirect("linking:confirm_student")
    return render(request, "linking/add_student.html", {"form": form})


@observer_page
@require_http_methods(["GET", "POST"])
def confirm_student(request):
    """Step 2: show the student's name; linking happens only when the parent confirms."""
    pending = request.session.get(PENDING_CODE_KEY)
    if not pending or pending.get("root_account_id") != request.root_account.pk:
        request.session.pop(PENDING_CODE_KEY, None)
        messages.info(request, _("Enter the pairing code first."))
        return redirect("linking:add_student")
    if request.method == "GET":
        student = User.objects.live().filter(pk=pending["student_id"]).first()
        if student is None:
            request.session.pop(PENDING_CODE_KEY, None)
            return _add_student_refused(request)
        return render(request, "linking/confirm_student.html", {"student": student})
    request.session.pop(PENDING_CODE_KEY, None)
    if "cancel" in request.POST:
        messages.info(request, _("Nothing was changed."))
        return redirect("linking:observing")
    try:
        linked, _links = pairing_service.redeem_pairing_code(
            code=pending["code"],
            observer=request.user,
            root_account=request.root_account,
            actor=_actor(request),
        )
    except RateLimited as error:
        return rate_limited(request, error)
    except LinkingError:
        return _add_student_refused(request)
    if any(link.workflow_state == ObservationLink.State.PENDING for link in _links):
        messages.info(
            request,
            _("%(name)s must approve the link first; you will see their courses then.")
            % {"name": linked.name},
        )
    else:
        messages.success(request, _("You are now observing %(name)s.") % {"name": linked.name})
    return redirect("linking:observing")


def _refused_code_message(error: LinkingError) -> str:
    """The one message for a refused code, with the tries left before a pause."""
    if error.tries_left is None:
        return str(INVALID_CODE_MESSAGE)
    return f"{INVALID_CODE_MESSAGE} {tries_left_message(error.tries_left)}"


def _add_student_refused(request):
    context = {"form": AddStudentForm(), "error": INVALID_CODE_MESSAGE}
    return render(request, "linking/add_student.html", context)


@observer_page
@require_http_methods(["GET", "POST"])
def remove_student(request, link_id: int):
    link = get_object_or_404(
        ObservationLink.objects.live().select_related("student"),
        pk=link_id,
        observer=request.user,
        root_account=request.root_account,
    )
    if request.method == "GET":
        return render(request, "linking/remove_student.html", {"link": link})
    link_service.unlink_observer(link=link, actor=_actor(request))
    messages.success(request, _("You no longer observe %(name)s.") % {"name": link.student.name})
    return redirect("linking:observing")


# --- the Pairing page (students) ---------------------------------------------------------


@student_page
@require_GET
def pairing(request):
    codes = (
        PairingCode.objects.redeemable()
        .filter(student=request.user, root_account=request.root_account)
        .order_by("-created_at", "-id")
    )
    links = (
        ObservationLink.objects.live()
        .filter(student=request.user, root_account=request.root_account)
        .select_related("observer")
        .order_by("observer__sortable_name", "observer_id")
    )
    return render(
        request,
        "linking/pairing.html",
        {
            "codes": codes,
            "observers": [link for link in links if link.workflow_state == "active"],
            "pending": [link for link in links if link.workflow_state == "pending"],
            "may_end": rules.student_may_end_links(request.user, request.root_account),
            "protected": rules.is_protected(request.user, request.root_account),
            "codes_enabled": request.root_account.pairing_codes_enabled,
            "invite_form": (
                # The student's own language unless they choose another.
                InviteGuardianForm(initial={"language": translation.get_language()})
                if request.root_account.students_may_invite
                else None
            ),
            "recent_notifications": notifications.recent_for(request.user, request.root_account),
        },
    )


@student_page
@require_POST
def create_code(request):
    try:
        issued = pairing_service.issue_pairing_code(
            student=request.user, root_account=request.root_account, actor=_actor(request)
        )
    except FeatureDisabled:
        messages.error(request, _("Pairing codes are turned off at this school."))
        return redirect("linking:pairing")
    except NotAuthorized:
        return _forbidden(request, _("You cannot create pairing codes at this school."))
    # Shown once, on the next page; the session is server-side, so the
    # plaintext never travels in a URL or a cookie.
    request.session[NEW_CODE_KEY] = {
        "id": issued.pairing_code.pk,
        "plaintext": issued.plaintext,
    }
    return redirect("linking:new_code")


@student_page
@require_GET
def new_code(request):
    shown = request.session.pop(NEW_CODE_KEY, None)
    code = None
    if shown:
        code = (
            PairingCode.objects.redeemable()
            .filter(pk=shown["id"], student=request.user, root_account=request.root_account)
            .first()
        )
    if code is None:
        return redirect("linking:pairing")
    compact = shown["plaintext"].replace("-", "")
    pair_url = request.build_absolute_uri(
        reverse("linking:pair") + "?" + urlencode({"code": compact})
    )
    return render(
        request,
        "linking/new_code.html",
        {"code": code, "plaintext": shown["plaintext"], "pair_url": pair_url},
    )


@student_page
@require_POST
def revoke_code(request, code_id: int):
    code = get_object_or_404(
        PairingCode.objects.all(),
        pk=code_id,
        student=request.user,
        root_account=request.root_account,
    )
    try:
        revoked = pairing_service.revoke_pairing_code(pairing_code=code, actor=_actor(request))
    except NotAuthorized as error:  # pragma: no cover - the student always may
        raise Http404 from error
    if revoked:
        messages.success(request, _("The code was revoked; it no longer works."))
    else:
        messages.info(request, _("That code was already used or revoked."))
    return redirect("linking:pairing")


# --- the student's voice: who observes them -------------------------------------------


@student_page
@require_http_methods(["GET", "POST"])
def end_observer(request, link_id: int):
    """A student ends one of their observers' links (adults always; others where allowed)."""
    link = get_object_or_404(
        ObservationLink.objects.active().select_related("observer"),
        pk=link_id,
        student=request.user,
        root_account=request.root_account,
    )
    if not rules.student_may_end_links(request.user, request.root_account):
        return _forbidden(request, _("Your school's staff remove observers; ask them."))
    if request.method == "GET":
        return render(request, "linking/end_observer.html", {"link": link})
    safeguarding.end_link_as_student(
        link_id=link.pk,
        student=request.user,
        root_account=request.root_account,
        actor=_actor(request),
    )
    messages.success(request, _("%(name)s no longer observes you.") % {"name": link.observer.name})
    return redirect("linking:pairing")


def _answer_pending(request, link_id: int, service, done: str):
    try:
        link = service(
            link_id=link_id,
            student=request.user,
            root_account=request.root_account,
            actor=_actor(request),
        )
    except NotFound as error:
        raise Http404 from error
    except LinkingError:
        messages.error(request, _("This link cannot be approved. Ask your school's staff."))
        return redirect("linking:pairing")
    messages.success(request, done % {"name": link.observer.name})
    return redirect("linking:pairing")


@student_page
@require_POST
def approve_observer(request, link_id: int):
    return _answer_pending(
        request, link_id, safeguarding.approve_link, _("%(name)s now observes you.")
    )


@student_page
@require_POST
def decline_observer(request, link_id: int):
    return _answer_pending(
        request, link_id, safeguarding.decline_link, _("You declined %(name)s's request.")
    )


@student_page
@require_POST
def invite_guardian(request):
    """A student invites a parent or guardian by e-mail, where the school allows it."""
    form = InviteGuardianForm(request.POST)
    if not form.is_valid():
        if "email" in form.errors:
            messages.error(request, invitation_service.REFUSALS[invitation_service.INVALID_EMAIL])
        else:
            messages.error(request, invitation_service.INVALID_LANGUAGE_MESSAGE)
        return redirect("linking:pairing")
    try:
        sent = invitation_service.invite_guardian(
            student=request.user,
            email=form.cleaned_data["email"],
            root_account=request.root_account,
            actor=_actor(request),
            base_url=request.build_absolute_uri("/"),
            language=form.cleaned_data["language"] or translation.get_language(),
        )
    except RateLimited as error:
        return rate_limited(request, error)
    except NotAuthorized:
        return _forbidden(request, _("Students cannot send invitations at this school."))
    except LinkingError as error:
        if error.code == invitation_service.NOT_ALLOWED:
            # The rules of who may observe refused it: never which (a restriction stays unsaid).
            messages.error(
                request,
                _("This address cannot be invited. Ask the school if you think this is wrong."),
            )
        else:  # the service's own message, in the student's language
            messages.error(request, error.message)
        return redirect("linking:pairing")
    messages.success(
        request,
        _("An invitation was sent to %(email)s. It works for that address only.")
        % {"email": sent.invitation.email},
    )
    return redirect("linking:pairing")
