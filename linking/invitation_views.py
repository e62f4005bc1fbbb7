"""Where an invitation's e-mailed link leads: sign in or sign up with the invited address, confirm.

The link's token is the only key; every rule (bound to the address, open or
not, the link itself) is in linking.services.invitations. The pages come up
in the invitation's language for a visitor who has not chosen one
(locale.offer_language).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from .locale import offer_language
from .models import AuditSource, GuardianInvitation, ObservationLink
from .request_context import actor_from_request
from .services import invitations, passwords, registration
from .services.errors import LinkingError, LoginTaken

LOGIN_BACKEND = "linking.auth_backends.LoginBackend"


class InvitedSignupForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Your full name"),
        max_length=255,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    password1 = forms.CharField(
        label=gettext_lazy("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=gettext_lazy("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first:
            try:
                passwords.validate_new_password(
                    first, name=cleaned.get("name", ""), email=self.email, login_id=self.email
                )
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


def _actor(request):
    return actor_from_request(request, AuditSource.PORTAL)


def _find(request, token: str) -> GuardianInvitation | None:
    """The invitation the link names, its pages in its language unless the visitor chose one."""
    found = invitations.invitation_for_token(token=token, root_account=request.root_account)
    if found is not None:
        offer_language(request, invitations.language_of(found))
    return found


def _closed(request, invitation: GuardianInvitation | None):
    return render(
        request,
        "linking/invitation_closed.html",
        {"invitation": invitation, "state": invitation.current_state if invitation else None},
        status=404 if invitation is None else 410,
    )


@require_http_methods(["GET", "POST"])
def invitation(request, token: str):
    found = _find(request, token)
    if found is None or found.current_state != GuardianInvitation.State.PENDING:
        return _closed(request, found)
    here = request.get_full_path()
    if not request.user.is_authenticated:
        return render(
            request,
            "linking/invitation.html",
            {
                "invitation": found,
                "signin_url": reverse("linking:login") + "?" + urlencode({"next": here}),
                "signup_url": reverse("linking:invitation_signup", kwargs={"token": token}),
            },
        )
    if not invitations.holds_address(request.user, found):
        return render(
            request, "linking/invitation_other_address.html", {"invitation": found}, status=403
        )
    if request.method == "GET":
        return render(request, "linking/invitation_confirm.html", {"invitation": found})
    try:
        if "decline" in request.POST:
            invitations.decline_invitation(
                invitation=found, user=request.user, actor=_actor(request)
            )
            messages.info(request, _("You declined the invitation. Nothing was linked."))
            return redirect("linking:home")
        link = invitations.accept_invitation(
            invitation=found, user=request.user, actor=_actor(request)
        )
    except LinkingError as error:
        return render(
            request,
            "linking/invitation_confirm.html",
            {"invitation": found, "error": _refused_message(error)},
            status=409,
        )
    _linked_message(request, link, found.student)
    return redirect("linking:observing")


def _refused_message(error: LinkingError) -> str:
    """One message in the reader's language for every refusal (it reveals no rule)."""
    if isinstance(error, invitations.InvitationForAnotherAddress):
        return _("This invitation was sent to another e-mail address.")
    return _("This invitation cannot be used. Ask the school if you think this is wrong.")


def _linked_message(request, link, student) -> None:
    """Linked now, or (an adult student, services.rules) once the student approves."""
    if link.workflow_state == ObservationLink.State.PENDING:
        messages.info(
            request, _("%(names)s must approve the link first.") % {"names": student.name}
        )
    else:
        messages.success(request, _("You are now observing %(name)s.") % {"name": student.name})


@require_http_methods(["GET", "POST"])
def invitation_signup(request, token: str):
    found = _find(request, token)
    if found is None or found.current_state != GuardianInvitation.State.PENDING:
        return _closed(request, found)
    if request.user.is_authenticated:
        return redirect("linking:invitation", token=token)
    form = InvitedSignupForm(request.POST or None, email=found.email)
    if request.method == "POST" and form.is_valid():
        try:
            user, link = registration.register_invited_guardian(
                name=form.cleaned_data["name"],
                password=form.cleaned_data["password1"],
                invitation=found,
                actor=_actor(request),
            )
        except LoginTaken:
            form.add_error(
                None,
                _("There is already an account with this address here. Sign in instead."),
            )
        except LinkingError as error:
            form.add_error(None, _refused_message(error))
        else:
            auth_login(request, user, backend=LOGIN_BACKEND)
            _linked_message(request, link, found.student)
            return redirect("linking:observing")
    return render(request, "linking/invitation_signup.html", {"form": form, "invitation": found})
