"""Admin: guardian invitations by state; invite an address for a student, resend, withdraw."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import AuditSource, GuardianInvitation, User
from ..request_context import actor_from_request
from ..services import invitations as invitation_services
from ..services.errors import LinkingError
from .tenancy import PersonSearchMixin, SafeAutocompleteSelect, TenantScopedAdmin

State = GuardianInvitation.State


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


class InviteForm(forms.Form):
    student = forms.ModelChoiceField(queryset=User.objects.none(), label=_("Student"))
    email = forms.EmailField(label=_("Guardian's e-mail address"), max_length=254)


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
            *super().get_urls(),
        ]

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
