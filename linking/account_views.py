"""Pages for getting back into an account: password reset and confirming a parent's address.

Django's own password-reset views, pointed at the logins of the school
whose host the request came to; the services (linking.services.passwords,
verification) hold every rule.
"""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from .forms import PasswordResetRequestForm, ResetPasswordForm
from .models import AuditSource
from .request_context import actor_from_request
from .services import passwords, verification
from .services.errors import RateLimited
from .views import rate_limited, school_member_required


def _actor(request):
    return actor_from_request(request, AuditSource.PORTAL)


def _base_url(request) -> str:
    return request.build_absolute_uri("/")


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a link by e-mail address: the same answer whether or not the address is known."""

    form_class = PasswordResetRequestForm
    template_name = "linking/password_reset.html"
    success_url = reverse_lazy("linking:password_reset_done")
    title = gettext_lazy("Reset your password")

    def form_valid(self, form):
        try:
            passwords.request_password_reset(
                root_account=self.request.root_account,
                email=form.cleaned_data["email"],
                base_url=_base_url(self.request),
                actor=_actor(self.request),
            )
        except RateLimited as error:
            return rate_limited(self.request, error)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "linking/password_reset_done.html"
    title = gettext_lazy("Check your e-mail")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The e-mailed link: Django's view (token moved into the session), for this school's login."""

    form_class = ResetPasswordForm
    template_name = "linking/password_reset_confirm.html"
    success_url = reverse_lazy("linking:password_reset_complete")
    token_generator = passwords.token_generator
    title = gettext_lazy("Choose a new password")

    def get_user(self, uidb64):
        return passwords.login_from_link(root_account=self.request.root_account, uidb64=uidb64)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["actor"] = _actor(self.request)
        return kwargs


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "linking/password_reset_complete.html"
    title = gettext_lazy("Your password was changed")


@require_http_methods(["GET", "POST"])
def verify_email(request, uidb64: str, token: str):
    """The confirmation link: a button to confirm (a mail scanner's GET confirms nothing)."""
    user = verification.user_from_link(root_account=request.root_account, uidb64=uidb64)
    if request.method == "GET":
        # Checked on the page too, so it tells nothing to someone without the token.
        valid = verification.link_is_valid(user, token)
        return render(request, "linking/verify_email.html", {"valid": valid})
    if user is not None:
        try:
            verification.verify_email(
                user=user, token=token, root_account=request.root_account, actor=_actor(request)
            )
        except verification.InvalidVerificationLink:
            pass
        else:
            messages.success(request, _("Thank you: your e-mail address is confirmed."))
            return redirect("linking:home" if request.user.is_authenticated else "linking:login")
    return render(request, "linking/verify_email.html", {"valid": False, "refused": True})


@school_member_required
@require_POST
def resend_verification(request):
    try:
        sent = verification.send_verification(
            user=request.user,
            root_account=request.root_account,
            base_url=_base_url(request),
            actor=_actor(request),
        )
    except RateLimited as error:
        return rate_limited(request, error)
    if sent:
        messages.success(
            request,
            _("A new link is on its way to %(email)s. Open it to confirm your address.")
            % {"email": request.user.email},
        )
    return redirect("linking:home")
