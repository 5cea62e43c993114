import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    is_staff = False
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def persist_password(self, create, extracted, **kwargs):
        if create:
            self.save()


class StaffUserFactory(UserFactory):
    """A staff member; ``roles=["ops", ...]`` puts them in those role groups."""

    is_staff = True

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=extracted))
