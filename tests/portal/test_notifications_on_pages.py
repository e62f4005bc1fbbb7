"""The Observing and Pairing pages show the person's recent notifications."""

from django.urls import reverse

from linking.models import EnrollmentType, LinkSource
from linking.models.notifications import EmailNotification
from linking.services import enrollments, links, notifications
from linking.services.context import Actor
from tests import factories


def test_student_and_observer_see_recent_notifications(client, root_account, make_user):
    student = make_user("Child Notified", root_account)
    parent = make_user("Parent Notified", root_account)
    course = factories.CourseFactory(account=root_account)
    enrollments.enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    links.link_observer(
        observer=parent,
        student=student,
        root_account=root_account,
        actor=Actor.system("admin"),
        source=LinkSource.ADMIN,
    )
    notifications.plan_all_pending()  # what the sender does first
    assert EmailNotification.objects.filter(recipient=student).count() == 1
    assert EmailNotification.objects.filter(recipient=parent).count() == 1

    client.force_login(student)
    page = client.get(reverse("linking:pairing"), HTTP_HOST="default.test")
    assert page.status_code == 200
    assert page.context["recent_notifications"] == list(
        EmailNotification.objects.filter(recipient=student)
    )
    assert "Recent notifications" in page.content.decode()

    client.force_login(parent)
    page = client.get(reverse("linking:observing"), HTTP_HOST="default.test")
    assert page.status_code == 200
    assert [n.recipient_id for n in page.context["recent_notifications"]] == [parent.pk]
