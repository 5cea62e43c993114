"""Encrypted fields: no plaintext in the database, authenticated, bound to their column, rotatable."""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from fintech.core.crypto import Keyring, KeyringError, blind_index, generate_key_entry, split_stored_value
from fintech.core.fields import EncryptedValueError
from fintech.core.models import Customer

pytestmark = pytest.mark.django_db
KEY_ONE = generate_key_entry("one")
KEY_TWO = generate_key_entry("two")
TAX_ID = "123-45-6789"


def _customer(**values) -> Customer:
    defaults = {
        "kind": Customer.Kind.PERSON,
        "legal_name": "Ada Lovelace",
        "tax_id": TAX_ID,
        "date_of_birth": datetime.date(1815, 12, 10),
        "address": {"lines": ["12 St James's Square"], "city": "London", "country": "GB"},
    }
    return Customer.objects.create(**{**defaults, **values})


def _raw(column: str, pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM core_customer WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return bytes(cursor.fetchone()[0])


def _write_raw(column: str, pk: int, value: bytes) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE core_customer SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


def test_values_round_trip_and_the_database_holds_no_plaintext():
    customer = _customer()
    loaded = Customer.objects.get(pk=customer.pk)
    assert loaded.tax_id == TAX_ID
    assert loaded.date_of_birth == datetime.date(1815, 12, 10)
    assert loaded.address["city"] == "London"
    for column, plaintext in (("tax_id", b"123-45-6789"), ("date_of_birth", b"1815-12-10"), ("address", b"London")):
        stored = _raw(column, customer.pk)
        assert plaintext not in stored
        assert split_stored_value(stored)[0] == "test1"


def test_the_same_plaintext_gives_different_ciphertexts():
    first, second = _customer(), _customer(legal_name="Ada King")
    assert _raw("tax_id", first.pk) != _raw("tax_id", second.pk)
    assert split_stored_value(_raw("tax_id", first.pk))[1] != split_stored_value(_raw("tax_id", second.pk))[1]


def test_a_flipped_byte_is_rejected_naming_model_field_and_key():
    customer = _customer()
    stored = bytearray(_raw("tax_id", customer.pk))
    stored[-1] ^= 0x01
    _write_raw("tax_id", customer.pk, bytes(stored))
    loaded = Customer.objects.get(pk=customer.pk)  # the row still loads
    assert loaded.legal_name == "Ada Lovelace"
    with pytest.raises(EncryptedValueError) as error:
        _ = loaded.tax_id
    assert str(error.value).startswith(f"core.Customer.tax_id of primary key {customer.pk} cannot be decrypted")
    assert "authentication failed" in str(error.value)


def test_a_value_copied_into_another_column_does_not_decrypt():
    customer = _customer()
    _write_raw("address", customer.pk, _raw("tax_id", customer.pk))
    with pytest.raises(EncryptedValueError, match="belongs to another column"):
        _ = Customer.objects.get(pk=customer.pk).address


def test_a_value_under_an_unknown_key_is_a_clear_error():
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_ONE):
        customer = _customer()
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_TWO), pytest.raises(EncryptedValueError) as error:
        _ = Customer.objects.get(pk=customer.pk).tax_id
    assert "encrypted under key 'one', which is not in FIELD_ENCRYPTION_KEYS" in str(error.value)


def test_blind_index_finds_exact_matches_whatever_the_formatting():
    customer = _customer()
    _customer(legal_name="Someone Else", tax_id="987-65-4321")
    lookup = Customer._meta.get_field("tax_id_index").lookup_value("123 45 6789")
    assert list(Customer.objects.filter(tax_id_index=lookup)) == [customer]
    assert lookup == blind_index(TAX_ID, purpose="customer.tax_id")
    assert lookup != blind_index(TAX_ID, purpose="another.column")  # per-purpose keys
    assert TAX_ID.replace("-", "") not in lookup


def test_changing_the_value_updates_the_index_and_clearing_it_empties_it():
    customer = _customer()
    customer.tax_id = "555-55-5555"
    customer.save()
    field = Customer._meta.get_field("tax_id_index")
    assert Customer.objects.filter(tax_id_index=field.lookup_value("555-55-5555")).exists()
    assert not Customer.objects.filter(tax_id_index=field.lookup_value(TAX_ID)).exists()
    customer.tax_id = None
    customer.save()
    customer.refresh_from_db()
    assert (customer.tax_id, customer.tax_id_index) == (None, "")


def test_rotation_re_encrypts_everything_so_the_old_key_can_be_removed(capsys):
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_ONE):
        customers = [_customer(legal_name=f"Customer {n}", tax_id=f"000-00-{n:04d}") for n in range(7)]
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_TWO},{KEY_ONE}"):
        with pytest.raises(CommandError, match="21 values still use an old key"):
            call_command("rotate_encryption_keys", "--check")
        call_command("rotate_encryption_keys", "--batch-size", "3")
        assert "21 values re-encrypted under key two; 0 already current; 0 unreadable." in capsys.readouterr().out
        call_command("rotate_encryption_keys")  # running again changes nothing
        assert "0 values re-encrypted under key two; 21 already current" in capsys.readouterr().out
        call_command("rotate_encryption_keys", "--check")
        assert "values under other keys: 0" in capsys.readouterr().out
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_TWO):  # the old key is gone
        for index, customer in enumerate(customers):
            loaded = Customer.objects.get(pk=customer.pk)
            assert loaded.tax_id == f"000-00-{index:04d}"
            assert loaded.address["city"] == "London"


def test_rotation_reports_values_it_cannot_read_and_goes_on(capsys, settings):
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_ONE):
        lost = _customer(legal_name="Lost key")  # its key "one" is then dropped from the keyring
    readable = _customer(legal_name="Readable")  # under the test run's key "test1"
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_TWO},{settings.FIELD_ENCRYPTION_KEYS}"):
        with pytest.raises(CommandError, match="3 values could not be decrypted"):
            call_command("rotate_encryption_keys")
        errors = capsys.readouterr().err
        assert f"core.Customer.tax_id of primary key {lost.pk} cannot be decrypted" in errors
        assert Customer.objects.get(pk=readable.pk).tax_id == TAX_ID
        assert split_stored_value(_raw("tax_id", readable.pk))[0] == "two"


@pytest.mark.parametrize(
    ("specification", "message"),
    [
        ("", "is empty"),
        ("no-separator", "must look like <key id>:<base64 key>"),
        ("k1:not base64!", "is not valid base64"),
        ("k1:c2hvcnQ=", "must be 32 bytes"),
        (f"{KEY_ONE},{KEY_ONE}", "twice"),
    ],
)
def test_a_bad_keyring_is_refused_with_a_clear_message(specification, message):
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(specification)


def test_generate_encryption_key_prints_a_usable_entry(capsys):
    call_command("generate_encryption_key", "2026-11")
    entry = capsys.readouterr().out.strip()
    assert Keyring.parse(entry).current_key_id == "2026-11"


def test_encrypted_values_are_never_serialised():
    customer = _customer()
    with pytest.raises(TypeError, match="is encrypted and is not serialised"):
        Customer._meta.get_field("tax_id").value_to_string(customer)


def test_rotation_covers_mfa_secrets_and_codes_still_work_after(capsys):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from tests.factories import StaffUserFactory
    from tests.utils import totp_code

    officer = StaffUserFactory(username="carla")
    secret = generate_totp_secret()
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_ONE):
        TOTP.activate(officer, secret)
        codes = RecoveryCodes.activate(officer).get_unused_codes()
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_TWO},{KEY_ONE}"):
        with pytest.raises(CommandError, match="2 values still use an old key"):
            call_command("rotate_encryption_keys", "--check")
        call_command("rotate_encryption_keys")
        assert "2 values re-encrypted under key two" in capsys.readouterr().out
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_TWO):
        totp = TOTP(Authenticator.objects.get(user=officer, type=Authenticator.Type.TOTP))
        assert totp.validate_code(totp_code(secret))
        recovery = RecoveryCodes(Authenticator.objects.get(user=officer, type=Authenticator.Type.RECOVERY_CODES))
        assert recovery.get_unused_codes() == codes


def test_a_deferred_encrypted_field_is_loaded_when_read():
    customer = _customer()
    deferred = Customer.objects.only("legal_name").get(pk=customer.pk)
    assert deferred.tax_id == TAX_ID
    assert deferred.date_of_birth == datetime.date(1815, 12, 10)


def test_mfa_rotation_works_in_batches_and_reports_an_unreadable_secret(capsys):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from tests.factories import StaffUserFactory

    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_ONE):
        for number in range(3):
            TOTP.activate(StaffUserFactory(username=f"officer{number}"), generate_totp_secret())
    broken = StaffUserFactory(username="broken")
    Authenticator.objects.create(user=broken, type=Authenticator.Type.TOTP, data={"secret": "fintech:v1:AAAA"})
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_TWO},{KEY_ONE}"):
        with pytest.raises(CommandError, match="1 values could not be decrypted"):
            call_command("rotate_encryption_keys", "--batch-size", "2")
        output = capsys.readouterr()
        assert "3 values re-encrypted under key two" in output.out
        assert f"authenticator {Authenticator.objects.get(user=broken).pk} cannot be decrypted" in output.err
        assert "AAAA" not in output.err
