"""The staff sign-in form: the "username" is a login id of the current root account."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.utils.translation import gettext_lazy as _

from linking.forms import TriesLeftLoginMixin


class StaffLoginForm(TriesLeftLoginMixin, AdminAuthenticationForm):
    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        field = self.fields["username"]
        field.label = _("Login ID")
        field.max_length = 255
        field.widget = forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "username", "maxlength": 255}
        )
