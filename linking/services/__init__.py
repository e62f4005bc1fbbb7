"""Every state change of the linking domain lives here.

Interfaces (API, admin, pages, commands) parse input, call one service and
render the result; they translate :class:`~linking.services.errors.LinkingError`
into their own idiom.
"""
