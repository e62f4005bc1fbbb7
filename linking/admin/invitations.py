"""Admin: guardian invitations by state; invite an address for a student, resend, withdraw."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..forms import language_field
from ..models import Account, AuditSource, Course, GuardianInvitation, User
from ..request_context import actor_from_request
from ..services import bulk_invitations
from ..services import invitations as invitation_services
from ..services.errors import LinkingError, NotAuthorized
from .tenancy import PersonSearchMixin, SafeAutocompleteSelect, TenantScopedAdmin

State = GuardianInvitation.State

# How many of the guardians to invite the preview lists (the counts cover all).
PREVIEW_ROWS = 20


class InvitationStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == State.PENDING:
            return queryset.open()
        if value == State.EXPIRED:
            return queryset.expired()
        if value in State.values:
            return queryset.filter(state=value)
        return queryset


LANGUAGE_HELP = _(
    "The language of the e-mail and of the pages its link opens. A guardian who has an "
    "account here and chose a language gets theirs instead."
)


def _language_field() -> forms.ChoiceField:
    """Staff get the site's default unless they choose."""
    return language_field(
        label=_("Language"), help_text=LANGUAGE_HELP, initial=settings.LANGUAGE_CODE
    )


class InviteForm(forms.Form):
    student = forms.ModelChoiceField(queryset=User.objects.none(), label=_("Student"))
    email = forms.EmailField(label=_("Guardian's e-mail address"), max_length=254)
    language = _language_field()


class BulkLanguageForm(forms.Form):
    language = _language_field()


@admin.register(GuardianInvitation)
class GuardianInvitationAdmin(PersonSearchMixin, TenantScopedAdmin):
    list_display = ["email", "student", "state_display", "created_at", "sent_at", "expires_at"]
    list_select_related = ["student", "root_account"]
    list_filter = [InvitationStateFilter, "created_at"]
    tenant_filter = "root_account"
    search_fields = ["email", "student__name"]
    person_paths = ("student",)
    fields = [
        "email",
        "student",
        "root_account",
        "state_display",
        "invited_by",
        "created_at",
        "sent_at",
        "expires_at",
        "responded_at",
        "accepted_by",
    ]
    readonly_fields = fields
    actions = ["resend", "withdraw"]

    @admin.display(description=_("state"))
    def state_display(self, obj):
        return State(obj.current_state).label

    def get_search_results(self, request, queryset, search_term):
        by_person, _dupes = super().get_search_results(request, queryset, search_term)
        if not search_term.strip():
            return queryset, False
        return by_person | queryset.filter(email__icontains=search_term.strip()), False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "add/",
                self.admin_site.admin_view(self.invite_view),
                name="{}_{}_add".format(*info),
            ),
            path(
                "bulk/",
                self.admin_site.admin_view(self.bulk_view),
                name="{}_{}_bulk".format(*info),
            ),
            *super().get_urls(),
        ]

    def _bulk_scope(self, request):
        """The course or account the request names, within the staff member's tenant (else 404)."""
        source = request.POST if request.method == "POST" else request.GET
        course_id, account_id = source.get("course", ""), source.get("account", "")
        if bool(course_id) == bool(account_id) or not (course_id or account_id).isdigit():
            raise Http404
        if course_id:
            courses = self.admin_site._registry[Course].get_queryset(request)
            course = courses.select_related("root_account").filter(pk=course_id).first()
            if course is None:
                raise Http404
            return bulk_invitations.Scope(root_account=course.root_account, course=course)
        accounts = self.admin_site._registry[Account].get_queryset(request)
        account = accounts.filter(pk=account_id).first()
        if account is None:
            raise Http404
        root = account if account.is_root else Account.objects.get(pk=account.root_account_id)
        return bulk_invitations.Scope(root_account=root, account=account)

    def bulk_view(self, request):
        """Preview, then confirm: invite every guardian the SIS gives for a course or account.

        Only staff allowed to invite in that school see the preview (it lists
        guardians' addresses); the service checks again when confirmed.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        scope = self._bulk_scope(request)
        actor = actor_from_request(request, AuditSource.ADMIN)
        try:
            bulk_invitations.require_bulk_inviter(actor, scope.root_account)
        except NotAuthorized as error:
            raise PermissionDenied from error
        changelist = reverse(f"{self.admin_site.name}:linking_guardianinvitation_changelist")
        confirming = request.method == "POST" and request.POST.get("confirm")
        language_form = BulkLanguageForm(request.POST if confirming else None)
        if confirming and not language_form.is_valid():
            self.message_user(request, invitation_services.INVALID_LANGUAGE_MESSAGE, messages.ERROR)
        elif confirming:
            try:
                result = bulk_invitations.invite_guardians(
                    scope=scope, actor=actor, language=language_form.cleaned_data["language"]
                )
            except LinkingError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    ngettext(
                        "Invited %(count)d guardian of %(scope)s; the e-mail is on its way.",
                        "Invited %(count)d guardians of %(scope)s; the e-mails are on their way.",
                        len(result.invited),
                    )
                    % {"count": len(result.invited), "scope": scope},
                )
                if result.plan.skipped_total:
                    self.message_user(
                        request,
                        ngettext(
                            "%(count)d skipped (see the reasons on the preview).",
                            "%(count)d skipped (see the reasons on the preview).",
                            result.plan.skipped_total,
                        )
                        % {"count": result.plan.skipped_total},
                        messages.WARNING,
                    )
                return HttpResponseRedirect(changelist)
        plan = bulk_invitations.plan_invitations(scope=scope)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Invite the guardians of %(scope)s") % {"scope": scope},
            "scope": scope,
            "scope_field": "course" if scope.course is not None else "account",
            "scope_id": scope.course.pk if scope.course is not None else scope.account.pk,
            "plan": plan,
            "rows": plan.to_invite[:PREVIEW_ROWS],
            "more": max(0, len(plan.to_invite) - PREVIEW_ROWS),
            "skipped": plan.skipped_rows(),
            "language_form": language_form,
        }
        response = TemplateResponse(request, "admin/linking/guardianinvitation/bulk.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def _base_url(self, request) -> str:
        return request.build_absolute_uri("/")

    def invite_view(self, request):
        """Invite one address for one student (the service checks the staff member's right)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = InviteForm(request.POST or None)
        form.fields["student"].widget = SafeAutocompleteSelect(
            GuardianInvitation._meta.get_field("student"), self.admin_site
        )
        form.fields["student"].queryset = self.admin_site._registry[User].get_queryset(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Invite a guardian"),
            "form": form,
            "media": self.media + form.media,
        }
        if request.method == "POST" and form.is_valid():
            try:
                sent = invitation_services.invite_guardian(
                    student=form.cleaned_data["student"],
                    email=form.cleaned_data["email"],
                    root_account=request.root_account,
                    actor=actor_from_request(request, AuditSource.ADMIN),
                    base_url=self._base_url(request),
                    language=form.cleaned_data["language"],
                )
            except LinkingError as error:
                form.add_error(None, forms.ValidationError(error.message, code=error.code))
            else:
                self.message_user(
                    request,
                    _("An invitation was sent to %(email)s.") % {"email": sent.invitation.email},
                )
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:linking_guardianinvitation_changelist")
                )
        return TemplateResponse(request, "admin/linking/guardianinvitation/invite.html", context)

    @admin.action(description=_("Send the selected invitations again"))
    def resend(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = 0
        for invitation in queryset.select_related("student", "root_account"):
            try:
                invitation_services.resend_invitation(
                    invitation=invitation, actor=actor, base_url=self._base_url(request)
                )
                count += 1
            except LinkingError as error:
                self.message_user(request, f"{invitation}: {error.message}", messages.WARNING)
        self.message_user(
            request,
            ngettext("Sent %d invitation again.", "Sent %d invitations again.", count) % count,
        )

    @admin.action(description=_("Withdraw the selected invitations"))
    def withdraw(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = 0
        for invitation in queryset.select_related("student", "root_account"):
            try:
                count += invitation_services.withdraw_invitation(invitation=invitation, actor=actor)
            except LinkingError as error:
                self.message_user(request, f"{invitation}: {error.message}", messages.ERROR)
        self.message_user(
            request,
            ngettext("Withdrew %d invitation.", "Withdrew %d invitations.", count) % count,
        )
