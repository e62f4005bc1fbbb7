import pytest

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/",
    "/admin/linking/user/",
    "/admin/linking/user/add/",
    "/admin/linking/account/",
    "/admin/linking/role/",
    "/admin/linking/accountadmin/",
    "/admin/linking/accountadmin/add/",
    "/admin/linking/courseroleoverride/",
    "/admin/linking/course/",
    "/admin/linking/course/add/",
    "/admin/linking/observationlink/",
    "/admin/linking/observationlink/add/",
    "/admin/linking/pairingcode/",
    "/admin/linking/pairingcode/issue/",
    "/admin/linking/accesstoken/",
    "/admin/linking/accesstoken/add/",
    "/admin/linking/auditevent/",
]


@pytest.mark.parametrize("url", PAGES)
def test_staff_page_renders(admin_a, url):
    response = admin_a.get(url)
    assert response.status_code == 200, url
