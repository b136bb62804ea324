"""portal/lib/safehttp.py: which addresses a customer's URL may reach."""

import ipaddress

import pytest

from portal.lib import safehttp


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
        "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1",
        "2002:7f00:1::", "2001:db8::1",
    ],
)  # fmt: skip
def test_addresses_inside_or_reserved_are_not_public(address):
    assert not safehttp.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are(address):
    assert safehttp.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["https://2130706433/", "https://0x7f000001/", "https://127.1/"])
def test_numeric_forms_of_loopback_are_refused(url):
    with pytest.raises(safehttp.Refused):
        safehttp.resolve(url)


def test_the_allow_list_lets_its_networks_through_and_only_them():
    allow = safehttp.networks(["127.0.0.1/32"])
    assert safehttp.resolve("http://127.0.0.1:9/", allow=allow).addresses
    with pytest.raises(safehttp.Refused):
        safehttp.resolve("http://[::1]:9/", allow=allow)
