"""The domain's errors. Each carries a stable ``code`` callers can match on."""


class LinkingError(Exception):
    """Base class: a rule of the domain refused the request."""

    code = "invalid"
    default_message = "The request could not be completed."

    # Set on a refused guess: tries left before the rate limit refuses more.
    tries_left: int | None = None

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        super().__init__(self.message)


class NotFound(LinkingError):
    code = "not_found"
    default_message = "The specified resource does not exist."


class NotAuthorized(LinkingError):
    code = "unauthorized"
    default_message = "user not authorized to perform that action"


class UnknownObservee(LinkingError):
    code = "unknown_observee"
    default_message = "Unknown observee."


class InvalidPairingCode(LinkingError):
    code = "invalid_pairing_code"
    default_message = "Invalid pairing code."


class InvalidCredentials(LinkingError):
    code = "invalid_credentials"
    default_message = "Invalid credentials provided."


class NothingToLink(LinkingError):
    code = "nothing_to_link"
    default_message = (
        "Provide one of pairing_code, access_token, or observee[unique_id] with observee[password]."
    )


class CannotObserveSelf(LinkingError):
    code = "self_link"
    default_message = "Cannot observe yourself"


class NoCommonRootAccount(LinkingError):
    code = "no_common_root_account"
    default_message = "The observer and the student do not belong to a common institution."


class RequiredFieldsMissing(LinkingError):
    code = "required"
    default_message = "student, observer and root_account are required"


class FeatureDisabled(LinkingError):
    code = "disabled"
    default_message = "This feature is turned off for this institution."


class RateLimited(LinkingError):
    code = "rate_limited"
    default_message = "Too many failed attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message)


class RateLimitStoreUnavailable(Exception):
    """The shared store of the rate limits cannot be reached: guesses fail closed (503).

    Not a LinkingError, so no view mistakes it for a refused guess; the
    middleware and the API's exception handler answer it like a lost
    database.
    """


class DomainTaken(LinkingError):
    code = "domain_taken"
    default_message = "Another institution already uses this domain."


class LoginTaken(LinkingError):
    code = "login_taken"
    default_message = "This login id is already in use at this institution."


class InvalidInvitation(LinkingError):
    """An invitation that cannot be used: unknown, expired, used, or refused by a rule.

    One answer for all of them, so a refusal reveals nothing (docs/security.md §15).
    """

    code = "invalid_invitation"
    default_message = "This invitation is not valid or has expired."


class LinkRefused(LinkingError):
    """A rule of who may observe refuses the link (services.rules).

    Only staff see this error, which names the rule but never a
    restriction's reason; everyone else gets the refusal their way of
    linking gives for a wrong code or credentials (docs/security.md).
    """

    code = "link_refused"
    default_message = "A rule of this school does not allow this link."
