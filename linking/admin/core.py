"""Admin: people, tenancy, courses, observation links, tokens and the audit trail.

Every change that touches links, codes, observer enrollments, tokens or the
audit trail goes through ``linking.services``; this module only parses forms,
calls one service and reports the result (domain errors become form errors
or admin messages).
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import (
    AccessToken,
    Account,
    AccountAdmin,
    AuditEvent,
    AuditSource,
    Course,
    CourseRoleOverride,
    Enrollment,
    EnrollmentType,
    Login,
    ObservationLink,
    Role,
    User,
)
from ..request_context import actor_from_request
from ..services import accounts as account_services
from ..services import enrollments as enrollment_services
from ..services import links as link_services
from ..services import staff as staff_services
from ..services import tokens as token_services
from ..services.errors import LinkingError
from ..services.scopes import SCOPE_DESCRIPTIONS
from . import audit, invitations, pairing  # noqa: F401  (registers their admins)
from .tenancy import (
    PersonSearchMixin,
    ReadOnlyTabularInline,
    SafeAutocompleteSelect,
    TenantScopedAdmin,
    TenantScopedTabularInline,
    admin_tenant,
    tenant_users,
)


def _root_accounts(request):
    root_account = admin_tenant(request)
    roots = Account.objects.roots()
    return roots if root_account is None else roots.filter(pk=root_account.pk)


# ---------------------------------------------------------------- people


class LoginInline(TenantScopedTabularInline):
    model = Login
    extra = 0
    can_delete = False
    fields = ["unique_id", "root_account", "sis_user_id", "integration_id", "workflow_state"]
    readonly_fields = ["last_login_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            kwargs["queryset"] = _root_accounts(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class UserEnrollmentInline(ReadOnlyTabularInline):
    model = Enrollment
    fk_name = "user"
    fields = ["course", "type", "workflow_state", "associated_user", "root_account"]
    readonly_fields = fields
    verbose_name_plural = _("enrollments (change them on the course)")


class ObservingLinkInline(ReadOnlyTabularInline):
    model = ObservationLink
    fk_name = "observer"
    fields = ["student", "root_account", "workflow_state", "kind", "ends_at", "created_at"]
    readonly_fields = fields
    verbose_name_plural = _("students this user observes")


class ObservedByLinkInline(ReadOnlyTabularInline):
    model = ObservationLink
    fk_name = "student"
    fields = ["observer", "root_account", "workflow_state", "kind", "ends_at", "created_at"]
    readonly_fields = fields
    verbose_name_plural = _("observers of this user")


class UserAddForm(forms.ModelForm):
    """A new person with their first login in the current root account."""

    login_id = forms.CharField(label=_("Login ID"), max_length=255)
    password = forms.CharField(
        label=_("Password"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Leave empty for a login that cannot sign in with a password."),
    )

    class Meta:
        model = User
        fields = ["name", "email"]

    def __init__(self, *args, root_account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.root_account = root_account

    def clean_login_id(self):
        login_id = self.cleaned_data["login_id"].strip()
        taken = (
            Login.objects.filter(root_account=self.root_account, unique_id__iexact=login_id)
            .exclude(workflow_state=Login.State.DELETED)
            .exists()
        )
        if taken:
            raise forms.ValidationError(_("This login ID is already taken."), code="taken")
        return login_id


@admin.register(User)
class UserAdmin(PersonSearchMixin, TenantScopedAdmin):
    list_display = ["name", "email", "workflow_state", "is_staff", "created_at"]
    list_filter = ["workflow_state", "is_staff"]
    # Autocomplete needs search_fields; PersonSearchMixin does the actual (tenant-aware) search.
    search_fields = ["name", "sortable_name", "email"]
    fields = [
        "name",
        "sortable_name",
        "short_name",
        "email",
        "pronouns",
        "locale",
        "birth_date",
        "workflow_state",
        "is_staff",
        "is_superuser",
    ]
    inlines = [LoginInline, UserEnrollmentInline, ObservingLinkInline, ObservedByLinkInline]

    def scope_queryset(self, queryset, root_account):
        return queryset.filter(pk__in=tenant_users(root_account).values("pk"))

    actions = ["delete_users"]

    def get_readonly_fields(self, request, obj=None):
        # Deleting goes through the action (links and enrollments end with the user).
        readonly = ["workflow_state"]
        return readonly if request.user.is_superuser else [*readonly, "is_superuser"]

    @admin.action(description=_("Delete the selected users (their links and enrollments end)"))
    def delete_users(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        people = list(
            queryset.exclude(workflow_state=User.State.DELETED).exclude(pk=request.user.pk)
        )
        for person in people:
            link_services.delete_user(user=person, actor=actor)
        count = len(people)
        self.message_user(request, ngettext("Deleted %d user.", "Deleted %d users.", count) % count)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            form = UserAddForm

            class BoundUserAddForm(form):
                def __init__(self, *args, **inner):
                    super().__init__(*args, root_account=request.root_account, **inner)

            return BoundUserAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["name", "email", "login_id", "password"]})]
        return super().get_fieldsets(request, obj)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.set_unusable_password()
        super().save_model(request, obj, form, change)
        account_services.add_login(
            user=obj,
            root_account=request.root_account,
            unique_id=form.cleaned_data["login_id"],
            password=form.cleaned_data["password"] or None,
        )


# ---------------------------------------------------------------- tenancy


def _page_for_one(model_admin, request, queryset, url_name: str, field: str, refusal):
    """An action's hand-over to a page for one selected row (``?field=pk``); else ``refusal``."""
    from django.shortcuts import redirect
    from django.urls import reverse

    if queryset.count() != 1:
        model_admin.message_user(request, refusal, messages.WARNING)
        return None
    url = reverse(f"{model_admin.admin_site.name}:{url_name}")
    return redirect(f"{url}?{field}={queryset.get().pk}")


def _bulk_invitation_preview(model_admin, request, queryset, field: str):
    """An action's hand-over to the bulk invitation preview (one course or account at a time)."""
    return _page_for_one(
        model_admin,
        request,
        queryset,
        "linking_guardianinvitation_bulk",
        field,
        _("Select exactly one."),
    )


@admin.register(Account)
class AccountModelAdmin(TenantScopedAdmin):
    list_display = ["name", "parent", "domain", "sis_account_id", "workflow_state"]
    # Django only follows non-null foreign keys on its own; parent is nullable.
    list_select_related = ["parent"]
    list_filter = ["workflow_state"]
    search_fields = ["name", "domain", "sis_account_id"]
    fieldsets = [
        (None, {"fields": ["name", "parent", "domain", "sis_account_id", "workflow_state"]}),
        (
            _("Root account settings"),
            {
                "fields": [
                    "self_registration",
                    "pairing_codes_enabled",
                    "pairing_code_lifetime_hours",
                    "credential_linking_allowed",
                    "avatars_enabled",
                    "time_zone",
                ],
                "description": _("Only used on root accounts."),
            },
        ),
        (
            _("Who may observe"),
            {
                "fields": [
                    "age_of_majority",
                    "coming_of_age_policy",
                    "students_may_end_links",
                    "students_may_invite",
                ],
                "description": _(
                    "Only used on root accounts. See docs/who-may-observe.md for each rule."
                ),
            },
        ),
    ]

    actions = ["invite_guardians"]

    def scope_queryset(self, queryset, root_account):
        return queryset.filter(Q(pk=root_account.pk) | Q(root_account=root_account))

    @admin.action(description=_("Invite the guardians of the selected account's students"))
    def invite_guardians(self, request, queryset):
        return _bulk_invitation_preview(self, request, queryset, "account")

    def has_add_permission(self, request):
        return request.user.is_superuser and super().has_add_permission(request)

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return [] if obj is None else ["parent"]
        return ["parent", "domain"]

    def save_model(self, request, obj, form, change):
        if not change and obj.parent_id is not None:
            obj.root_account_id = obj.parent.root_account_id or obj.parent_id
        super().save_model(request, obj, form, change)


@admin.register(Role)
class RoleAdmin(TenantScopedAdmin):
    list_display = [
        "name",
        "root_account",
        "manage_user_observers",
        "generate_observer_pairing_code",
        "read_sis",
        "view_user_logins",
        "read_roster",
    ]
    search_fields = ["name"]

    def scope_queryset(self, queryset, root_account):
        # The built-in AccountAdmin role (no root account) is visible to everyone.
        return queryset.filter(Q(root_account=root_account) | Q(root_account__isnull=True))

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["root_account"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            kwargs["queryset"] = _root_accounts(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.root_account_id is None and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change and not request.user.is_superuser:
            obj.root_account = request.root_account
        super().save_model(request, obj, form, change)


@admin.register(AccountAdmin)
class AccountAdminMembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "account", "role", "workflow_state", "created_at"]
    # Only the roles of listed memberships: a plain "role" filter listed every school's roles.
    list_filter = ["workflow_state", ("role", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__name", "user__email", "account__name"]
    autocomplete_fields = ["user"]
    fields = ["user", "account", "role", "workflow_state"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["user", "account", "role"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        membership = account_services.make_account_admin(
            user=obj.user, account=obj.account, role=obj.role
        )
        obj.pk = membership.pk
        obj.root_account_id = membership.root_account_id
        obj.workflow_state = membership.workflow_state
        obj._state.adding = False


@admin.register(CourseRoleOverride)
class CourseRoleOverrideAdmin(TenantScopedAdmin):
    list_display = ["account", "enrollment_type", "permission", "enabled"]
    list_filter = ["enrollment_type", "enabled"]
    allow_delete = True

    def scope_queryset(self, queryset, root_account):
        return queryset.filter(Q(account=root_account) | Q(account__root_account=root_account))


# ---------------------------------------------------------------- courses


class CourseEnrollmentForm(forms.ModelForm):
    """Existing enrollments change only their state; new ones are plain (non-observer) roles."""

    class Meta:
        model = Enrollment
        fields = ["user", "type", "workflow_state"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["user"].disabled = True
            self.fields["type"].disabled = True

    def clean_type(self):
        value = self.cleaned_data["type"]
        if not self.instance.pk and value == EnrollmentType.OBSERVER:
            raise forms.ValidationError(
                _("Observer enrollments come from observation links; add a link instead."),
                code="observer",
            )
        return value


class CourseEnrollmentInline(TenantScopedTabularInline):
    model = Enrollment
    fk_name = "course"
    form = CourseEnrollmentForm
    extra = 0
    can_delete = False
    autocomplete_fields = ["user"]
    fields = ["user", "type", "workflow_state", "associated_user", "updated_at"]
    readonly_fields = ["associated_user", "updated_at"]


@admin.register(Course)
class CourseAdmin(TenantScopedAdmin):
    list_display = ["name", "course_code", "account", "sis_course_id", "workflow_state"]
    list_filter = ["workflow_state"]
    tenant_filter = "root_account"
    search_fields = ["name", "course_code", "sis_course_id"]
    fields = ["name", "course_code", "account", "sis_course_id", "workflow_state"]
    inlines = [CourseEnrollmentInline]
    actions = ["issue_pairing_codes", "invite_guardians"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.root_account_id = obj.account.root_account_id or obj.account_id
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Enrollment:
            super().save_formset(request, form, formset, change)
            return
        # Through the service, so the students' observers follow their enrollments.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for enrollment_form in formset.forms:
            if not enrollment_form.has_changed() or not enrollment_form.cleaned_data:
                continue
            data = enrollment_form.cleaned_data
            if enrollment_form.instance.pk is None:
                enrollment = enrollment_services.enroll_user(
                    user=data["user"],
                    course=form.instance,
                    type=data["type"],
                    workflow_state=data["workflow_state"],
                )
                formset.new_objects.append(enrollment)
            else:
                enrollment = enrollment_services.set_enrollment_state(
                    enrollment=Enrollment.objects.get(pk=enrollment_form.instance.pk),
                    workflow_state=data["workflow_state"],
                )
                formset.changed_objects.append((enrollment, ["workflow_state"]))

    @admin.action(description=_("Issue pairing codes for the selected course"))
    def issue_pairing_codes(self, request, queryset):
        return _page_for_one(
            self,
            request,
            queryset,
            "linking_pairingcode_issue",
            "course",
            _("Select exactly one course."),
        )

    @admin.action(description=_("Invite the guardians of the selected course by e-mail"))
    def invite_guardians(self, request, queryset):
        return _bulk_invitation_preview(self, request, queryset, "course")


# ---------------------------------------------------------------- links


class ObservationLinkAddForm(forms.ModelForm):
    """Picks observer, student, root account, kind and end date; the link rules run in clean()."""

    request = None  # bound by ObservationLinkAdmin.get_form

    class Meta:
        model = ObservationLink
        fields = ["observer", "student", "root_account", "kind", "ends_at"]

    def clean(self):
        data = super().clean()
        observer, student = data.get("observer"), data.get("student")
        root_account = data.get("root_account")
        if observer and student and root_account:
            try:
                verdict = staff_services.check_staff_link(
                    observer=observer,
                    student=student,
                    root_account=root_account,
                    actor=actor_from_request(self.request, AuditSource.ADMIN),
                )
            except LinkingError as error:
                raise forms.ValidationError(error.message, code=error.code) from error
            self.verdict = verdict
        return data

    def _get_validation_exclusions(self):
        # The service decides, not the table's constraints on the pair: a
        # removed link of the same pair is restored (not refused as "already
        # exists"), and a self-link was refused in clean() in the staff's
        # words. Django skips the constraints on excluded fields.
        return {*super()._get_validation_exclusions(), "observer", "student"}


class ObservationLinkChangeForm(forms.ModelForm):
    """Staff change a link's kind and end date (services.links.change_link_terms)."""

    class Meta:
        model = ObservationLink
        fields = ["kind", "ends_at"]


class LinkAuditInline(ReadOnlyTabularInline):
    model = AuditEvent
    fk_name = "link"
    fields = ["created_at", "action", "source", "actor", "ip_address", "detail"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = _("audit trail")


@admin.register(ObservationLink)
class ObservationLinkAdmin(PersonSearchMixin, TenantScopedAdmin):
    list_display = [
        "observer",
        "student",
        "root_account",
        "workflow_state",
        "kind",
        "source",
        "created_at",
        "ends_at",
    ]
    list_select_related = ["observer", "student", "root_account"]
    list_filter = ["workflow_state", "kind", "source", "created_at"]
    tenant_filter = "root_account"
    search_fields = ["observer__name", "student__name"]
    person_paths = ("observer", "student")
    autocomplete_fields = ["observer", "student"]
    date_hierarchy = "created_at"
    actions = ["remove_links", "restore_links"]
    readonly_fields = [
        "observer",
        "student",
        "root_account",
        "workflow_state",
        "source",
        "created_by",
        "sis_batch",
        "created_at",
        "updated_at",
        "deleted_at",
        "end_reason",
    ]
    inlines = [LinkAuditInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:

            class BoundAddForm(ObservationLinkAddForm):
                pass

            BoundAddForm.request = request
            kwargs["form"] = BoundAddForm
        else:
            kwargs["form"] = ObservationLinkChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ObservationLinkAddForm.Meta.fields
        return [*self.readonly_fields[:5], "kind", "ends_at", *self.readonly_fields[5:]]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            kwargs["queryset"] = _root_accounts(request)
            kwargs["initial"] = getattr(request, "root_account", None)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        # Only the kind and the end date change here; the state changes
        # through the remove and restore actions.
        actor = actor_from_request(request, AuditSource.ADMIN)
        if change:
            link_services.change_link_terms(
                link=ObservationLink.objects.select_related(
                    "observer", "student", "root_account"
                ).get(pk=obj.pk),
                kind=form.cleaned_data["kind"],
                ends_at=form.cleaned_data["ends_at"],
                actor=actor,
            )
            return
        link, changed = staff_services.staff_link_observer(
            observer=obj.observer,
            student=obj.student,
            root_account=obj.root_account,
            kind=form.cleaned_data["kind"],
            ends_at=form.cleaned_data["ends_at"],
            actor=actor,
        )
        for field in ("pk", "workflow_state", "source", "created_at"):
            setattr(obj, field, getattr(link, field))
        obj._state.adding = False
        if link.workflow_state == ObservationLink.State.PENDING:
            self.message_user(
                request,
                _("The link awaits the student's approval (an adult, or one who ended it)."),
                messages.WARNING,
            )
        elif not changed:
            self.message_user(request, _("That link already existed and is active."))

    def _each_link(self, request, queryset, service, done_message):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = 0
        for link in queryset.select_related("observer", "student", "root_account"):
            try:
                result = service(link=link, actor=actor)
            except LinkingError as error:
                self.message_user(request, f"{link}: {error.message}", messages.ERROR)
                continue
            changed = result[1] if isinstance(result, tuple) else result
            count += bool(changed)
        self.message_user(request, done_message(count), messages.SUCCESS)

    @admin.action(description=_("Remove the selected links (observer enrollments end)"))
    def remove_links(self, request, queryset):
        self._each_link(
            request,
            queryset,
            link_services.unlink_observer,
            lambda n: ngettext("Removed %d link.", "Removed %d links.", n) % n,
        )

    @admin.action(description=_("Restore the selected links (observer enrollments return)"))
    def restore_links(self, request, queryset):
        self._each_link(
            request,
            queryset,
            lambda *, link, actor: link_services.restore_link(link=link, actor=actor),
            lambda n: ngettext("Restored %d link.", "Restored %d links.", n) % n,
        )


# ---------------------------------------------------------------- access tokens


class IssueTokenForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.none(), label=_("User"))
    purpose = forms.CharField(max_length=255, required=False, label=_("Purpose"))
    expires_at = forms.DateTimeField(
        required=False,
        label=_("Expires at"),
        help_text=_("YYYY-MM-DD HH:MM (UTC); empty for no expiry."),
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {text}") for scope, text in SCOPE_DESCRIPTIONS.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Scopes"),
        help_text=_("Leave all unticked for a token that may call every endpoint."),
    )


@admin.register(AccessToken)
class AccessTokenAdmin(TenantScopedAdmin):
    list_display = [
        "__str__",
        "user",
        "purpose",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_select_related = ["user", "created_by"]
    list_filter = ["created_at"]
    search_fields = ["user__name", "user__email", "purpose", "token_hint"]
    fields = [
        "user",
        "purpose",
        "token_hint",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "developer_key",
        "scopes",
    ]
    readonly_fields = fields
    actions = ["revoke_tokens"]

    def scope_queryset(self, queryset, root_account):
        return queryset.filter(user__in=tenant_users(root_account).values("pk"))

    def has_change_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """Issue a token through the service; the plaintext is shown on this response only."""
        if not self.has_add_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        users = self.admin_site._registry[User].get_queryset(request)
        form = IssueTokenForm(request.POST or None)
        form.fields["user"].widget = SafeAutocompleteSelect(
            AccessToken._meta.get_field("user"), self.admin_site
        )
        form.fields["user"].queryset = users
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Issue an access token"),
            "form": form,
            "media": self.media + form.media,
        }
        if request.method == "POST" and form.is_valid():
            token, plaintext = token_services.issue_access_token(
                user=form.cleaned_data["user"],
                actor=actor_from_request(request, AuditSource.ADMIN),
                purpose=form.cleaned_data["purpose"],
                expires_at=form.cleaned_data["expires_at"],
                scopes=form.cleaned_data["scopes"],
            )
            context.update({"token": token, "plaintext": plaintext, "title": _("Token issued")})
            response = TemplateResponse(request, "admin/linking/accesstoken/issued.html", context)
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/linking/accesstoken/issue.html", context)

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke_tokens(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = sum(
            token_services.revoke_access_token(token=token, actor=actor) for token in queryset
        )
        self.message_user(
            request, ngettext("Revoked %d token.", "Revoked %d tokens.", count) % count
        )
