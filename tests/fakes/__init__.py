"""Local fakes of the OAuth providers and APIs Patchwire talks to, for every test tier.

One loopback HTTP server speaks several dialects under path prefixes: ``/oauth2`` (a generic
Authlib authorization server), ``/google``, ``/slack``, ``/notion``, ``/telegram``. Tests drive it
through ``FakeProviders`` (switches, counters, clients) and point Patchwire at it with
``settings_env``. What each dialect imitates, and what it does not: docs/credentials.md,
"Provider fakes (tests)".
"""

from tests.fakes.env import endpoints, settings_env
from tests.fakes.server import FakeProviders
from tests.fakes.state import DEFAULT_ACCOUNT, PROVIDERS, FakeClient, FakeToken, ProviderState, RecordedRequest

__all__ = ["DEFAULT_ACCOUNT", "PROVIDERS", "FakeClient", "FakeProviders", "FakeToken", "ProviderState",
           "RecordedRequest", "endpoints", "settings_env"]
