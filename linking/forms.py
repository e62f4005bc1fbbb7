"""Forms of the parent and student pages. They check the shape of input only; services decide."""

import re

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .auth_backends import SSO_REQUIRED_ATTRIBUTE, TRIES_LEFT_ATTRIBUTE
from .services import passwords
from .services.registration import distinct_codes

MAX_SIGNUP_CODES = 5
LOGIN_ID_MAX_LENGTH = 255
_CODE_SPLIT = re.compile(r"[,;\n\r]+")

INVALID_CODE_MESSAGE = _(
    "That code is not valid. Check it with your student, or ask them for a new one."
)


def tries_left_message(tries_left: int) -> str:
    return ngettext(
        "You can try %(count)s more time before a pause.",
        "You can try %(count)s more times before a pause.",
        tries_left,
    ) % {"count": tries_left}


class TriesLeftLoginMixin:
    """Adds the tries left before a pause (counted by the sign-in backend) to "wrong password",
    or says which provider to use when the school requires single sign-on for this person."""

    def get_invalid_login_error(self):
        provider = getattr(self.request, SSO_REQUIRED_ATTRIBUTE, None)
        if provider is not None:
            return forms.ValidationError(
                _(
                    "Your school signs you in with %(provider)s: use the "
                    "“Sign in with %(provider)s” button instead of a password."
                ),
                code="sso_required",
                params={"provider": provider.name},
            )
        error = super().get_invalid_login_error()
        tries_left = getattr(self.request, TRIES_LEFT_ATTRIBUTE, None)
        if tries_left is None:
            return error
        return forms.ValidationError(
            [error, forms.ValidationError(tries_left_message(tries_left), code="tries_left")]
        )


class LoginForm(TriesLeftLoginMixin, AuthenticationForm):
    """Django's sign-in form with the school's "login id" in place of the user model's key."""

    username = forms.CharField(
        label=_("Login id"),
        max_length=LOGIN_ID_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("That login id and password do not match. Try again."),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        # AuthenticationForm sizes the field from USERNAME_FIELD (a UUID here).
        self.fields["username"].max_length = LOGIN_ID_MAX_LENGTH
        self.fields["username"].widget.attrs["maxlength"] = LOGIN_ID_MAX_LENGTH
        self.fields["username"].label = _("Login id")


class PairingCodeField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Pairing code"))
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault(
            "help_text",
            _("8 letters and digits, for example ABCD-EFGH. Dashes and case do not matter."),
        )
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={
                    "autocomplete": "off",
                    "autocapitalize": "characters",
                    "spellcheck": "false",
                    "class": "code-input",
                }
            ),
        )
        super().__init__(**kwargs)


def language_field(*, label, help_text, initial=None) -> forms.ChoiceField:
    """The language an invitation speaks, one of the site's (the student's form, the admin's).

    Not required: a form posted without it (a script, an older page) leaves
    the choice to the service (services.invitations.chosen_language).
    """
    return forms.ChoiceField(
        label=label,
        required=False,
        choices=settings.LANGUAGES,
        initial=initial,
        help_text=help_text,
    )


class InviteGuardianForm(forms.Form):
    email = forms.EmailField(
        label=_("Their e-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    # Without it (a form from before the field) the student's own language.
    language = language_field(
        label=_("Language of the e-mail"),
        help_text=_("If they already chose a language here, they get theirs."),
    )


class AddStudentForm(forms.Form):
    code = PairingCodeField()


class SignupForm(forms.Form):
    name = forms.CharField(
        label=_("Your full name"),
        max_length=255,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        help_text=_("You will sign in with this address."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    codes = forms.CharField(
        label=_("Pairing codes"),
        max_length=400,
        # Filled in per form (__init__): "%" on a lazy string at import would
        # fix the English text for every reader.
        help_text=_(
            "The code your student gave you, for example ABCD-EFGH. "
            "For several students, put each code on its own line (up to %(max)s)."
        ),
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "class": "code-input",
            }
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = self.fields["codes"]
        codes.help_text = str(codes.help_text) % {"max": MAX_SIGNUP_CODES}

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Enter your name."), code="required")
        return name

    def clean_email(self):
        return self.cleaned_data["email"].strip()

    def clean_codes(self):
        codes = distinct_codes(_CODE_SPLIT.split(self.cleaned_data["codes"]))
        if not codes:
            raise forms.ValidationError(_("Enter at least one pairing code."), code="required")
        if len(codes) > MAX_SIGNUP_CODES:
            raise forms.ValidationError(
                _("Enter at most %(max)s pairing codes."),
                code="too_many",
                params={"max": MAX_SIGNUP_CODES},
            )
        return codes

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error(
                "password2",
                forms.ValidationError(_("The two passwords differ."), code="password_mismatch"),
            )
        elif first:
            try:
                email = cleaned.get("email", "")
                passwords.validate_new_password(
                    first, name=cleaned.get("name", ""), email=email, login_id=email
                )
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        help_text=_("The address you sign in with, or the one the school has for you."),
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class ResetPasswordForm(SetPasswordForm):
    """Django's set-password form for one login; the passwords service checks and saves."""

    def __init__(self, user, *args, actor=None, **kwargs):
        self.actor = actor
        super().__init__(user, *args, **kwargs)
        self.fields["new_password1"].label = _("New password")
        self.fields["new_password2"].label = _("New password again")
        self.fields["new_password2"].help_text = ""

    def validate_password_for_user(self, user, password_field_name="new_password2"):  # noqa: S107
        password = self.cleaned_data.get(password_field_name)
        if password:
            try:
                passwords.validate_for_login(password, user)
            except forms.ValidationError as error:
                self.add_error(password_field_name, error)

    def save(self, commit=True):
        return passwords.reset_password(
            login=self.user, password=self.cleaned_data["new_password1"], actor=self.actor
        )
