"""Create (or revoke) a merchant API key. The key is printed once and stored only as a hash."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from fintech.core.audit import SystemActor
from fintech.core.exceptions import ApplicationError
from payments.api_models import ApiKey
from payments.authentication import MERCHANT_PERMISSION
from payments.checkout import api_key_create, api_key_revoke, merchant_api_grant

ACTOR = SystemActor("manage.py create_api_key")


class Command(BaseCommand):
    help = (
        "Create an API key for a merchant user and print it once (--user USERNAME --name NAME), "
        "or revoke one (--revoke PREFIX). The user needs the payments.use_merchant_api permission; "
        "--grant gives it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Username of the merchant the key acts for.")
        parser.add_argument("--name", help='What the key is for, e.g. "shop backend".')
        parser.add_argument(
            "--grant", action="store_true", help="Give the user the payments.use_merchant_api permission if needed."
        )
        parser.add_argument("--revoke", metavar="PREFIX", help="Revoke the key with this prefix (fk_live_…).")

    def handle(self, *args, user=None, name=None, grant=False, revoke=None, **options):
        try:
            if revoke:
                self._revoke(revoke)
            else:
                self._create(user, name, grant)
        except ApplicationError as error:
            raise CommandError(error.message) from None

    def _revoke(self, prefix: str) -> None:
        api_key = ApiKey.objects.filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {prefix!r}.")
        api_key_revoke(api_key=api_key, actor=ACTOR)
        self.stdout.write(f"Revoked {api_key.prefix} ({api_key.name}).")

    def _create(self, username: str | None, name: str | None, grant: bool) -> None:
        if not username or not name:
            raise CommandError("Give --user USERNAME and --name NAME (or --revoke PREFIX).")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if grant:
            merchant_api_grant(user=user, actor=ACTOR)
            user = get_user_model().objects.get(pk=user.pk)  # fresh permission cache
        if not user.has_perm(MERCHANT_PERMISSION):
            raise CommandError(
                f"{username} lacks the {MERCHANT_PERMISSION} permission, so the key would be refused: "
                "add --grant to give it."
            )
        api_key, key = api_key_create(user=user, name=name, actor=ACTOR)
        self.stdout.write(f"API key {api_key.prefix} ({api_key.name}) for {username}:")
        self.stdout.write(key)
        self.stdout.write("It is shown only now and cannot be recovered: store it in your secrets manager.")
