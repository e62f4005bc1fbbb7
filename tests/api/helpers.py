"""Assertions shared by the API tests."""

from linking.models import ObservationLink


def linked_student_ids(observer) -> list[int]:
    """Distinct students with an active link from ``observer``, by id."""
    return sorted(
        set(
            ObservationLink.objects.active()
            .filter(observer=observer)
            .values_list("student_id", flat=True)
        )
    )


def link_root_ids(observer, student) -> set[int]:
    return set(
        ObservationLink.objects.active()
        .filter(observer=observer, student=student)
        .values_list("root_account_id", flat=True)
    )


def error_message(response) -> str:
    return response.json()["errors"][0]["message"]


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    assert response.json() == {
        "status": "unauthorized",
        "errors": [{"message": "user not authorized to perform that action"}],
    }


def assert_not_found(response):
    assert response.status_code == 404, response.content
    assert response.json() == {"errors": [{"message": "The specified resource does not exist."}]}
