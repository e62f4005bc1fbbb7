"""Admin: pairing codes (never their plaintext), revoking them, and issuing letters and CSVs."""

import csv
import io
import re
from urllib.parse import urlencode

import segno
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import AuditSource, Course, PairingCode, User
from ..request_context import actor_from_request
from ..services import pairing as pairing_services
from ..services import staff as staff_services
from ..services.errors import LinkingError
from .tenancy import PersonSearchMixin, SafeAutocompleteSelect, TenantScopedAdmin

OUTPUT_LETTERS = "letters"
OUTPUT_CSV = "csv"


class PairingStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("active", _("active")),
            ("expired", _("expired")),
            ("redeemed", _("redeemed")),
            ("revoked", _("revoked")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "active":
            return queryset.redeemable()
        if value == "expired":
            return queryset.expired()
        if value in (PairingCode.State.REDEEMED, PairingCode.State.REVOKED):
            return queryset.filter(workflow_state=value)
        return queryset


class IssueCodesForm(forms.Form):
    """One student, or every student of one course."""

    student = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    course = forms.ModelChoiceField(queryset=Course.objects.none(), required=False)
    output = forms.ChoiceField(
        choices=[(OUTPUT_LETTERS, _("letters")), (OUTPUT_CSV, _("CSV"))],
        initial=OUTPUT_LETTERS,
        required=False,
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("student")) == bool(data.get("course")):
            raise forms.ValidationError(
                _("Choose either one student or one course."), code="one_target"
            )
        return data


def qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=4, border=2, title=None)


def csv_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "course"
    return f"{cleaned}_Pairing_Codes.csv"


@admin.register(PairingCode)
class PairingCodeAdmin(PersonSearchMixin, TenantScopedAdmin):
    list_display = [
        "student",
        "state_display",
        "issued_by",
        "created_at",
        "expires_at",
        "redeemed_by",
        "root_account",
    ]
    list_select_related = ["student", "issued_by", "redeemed_by", "root_account"]
    list_filter = [PairingStateFilter, "created_at"]
    tenant_filter = "root_account"
    search_fields = ["student__name"]
    person_paths = ("student",)
    fields = [
        "student",
        "root_account",
        "state_display",
        "issued_by",
        "created_at",
        "expires_at",
        "redeemed_by",
        "redeemed_at",
        "revoked_by",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke_codes"]

    @admin.display(description=_("state"))
    def state_display(self, obj):
        return obj.state

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revoke the selected codes"))
    def revoke_codes(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = 0
        for code in queryset.select_related("student", "root_account"):
            try:
                count += pairing_services.revoke_pairing_code(pairing_code=code, actor=actor)
            except LinkingError as error:
                self.message_user(request, f"{code}: {error.message}", messages.ERROR)
        self.message_user(request, ngettext("Revoked %d code.", "Revoked %d codes.", count) % count)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "issue/",
                self.admin_site.admin_view(self.issue_view),
                name="{}_{}_issue".format(*info),
            ),
            *super().get_urls(),
        ]

    def _issue_form(self, request):
        form = IssueCodesForm(request.POST or None, initial={"course": request.GET.get("course")})
        form.fields["student"].widget = SafeAutocompleteSelect(
            PairingCode._meta.get_field("student"), self.admin_site
        )
        # Assigned after the widget so the widget gets the (tenant-scoped) choices.
        form.fields["student"].queryset = self.admin_site._registry[User].get_queryset(request)
        form.fields["student"].label = _("One student")
        form.fields["course"].queryset = self.admin_site._registry[Course].get_queryset(request)
        form.fields["course"].label = _("Every student of a course")
        return form

    def issue_view(self, request):
        """Issue codes and answer with their letters or the CSV: the only time plaintext exists."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = self._issue_form(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Issue pairing codes"),
            "form": form,
            "media": self.media + form.media,
        }
        if request.method != "POST" or not form.is_valid():
            return TemplateResponse(request, "admin/linking/pairingcode/issue.html", context)
        actor = actor_from_request(request, AuditSource.ADMIN)
        course = form.cleaned_data["course"]
        try:
            if course is not None:
                letters = staff_services.issue_course_pairing_letters(course=course, actor=actor)
            else:
                letters = [
                    staff_services.issue_student_pairing_letter(
                        student=form.cleaned_data["student"],
                        root_account=request.root_account,
                        actor=actor,
                    )
                ]
        except LinkingError as error:
            form.add_error(None, forms.ValidationError(error.message, code=error.code))
            return TemplateResponse(request, "admin/linking/pairingcode/issue.html", context)
        if form.cleaned_data["output"] == OUTPUT_CSV:
            name = (course.course_code or course.name) if course else letters[0].student.name
            return self._csv_response(letters, csv_filename(name))
        pair_url = request.build_absolute_uri("/pair")
        context.update(
            {
                "title": _("Pairing letters"),
                "course": course,
                "pair_url": pair_url,
                "letters": [self._letter(letter, pair_url) for letter in letters],
            }
        )
        response = TemplateResponse(request, "admin/linking/pairingcode/letters.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _letter(letter, pair_url: str) -> dict:
        code_url = f"{pair_url}?{urlencode({'code': letter.issued.plaintext})}"
        # segno writes the SVG markup itself; nothing user-typed goes into it.
        qr = mark_safe(qr_svg(code_url))  # noqa: S308
        return {"letter": letter, "qr": qr, "code_url": code_url}

    def _csv_response(self, letters, filename: str) -> HttpResponse:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(staff_services.pairing_code_csv_rows(letters))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
