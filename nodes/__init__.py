"""The explicit registry of node types. Add a node type here, once."""

from __future__ import annotations

from engine.registry import Registry
from nodes.delay import Delay
from nodes.gmail_trigger import GmailTrigger
from nodes.http_poll_trigger import HttpPollTrigger
from nodes.http_request import HttpRequest
from nodes.if_ import If
from nodes.if_v2 import IfV2
from nodes.manual_trigger import ManualTrigger
from nodes.merge import Merge
from nodes.respond_to_webhook import RespondToWebhook
from nodes.rss_trigger import RssTrigger
from nodes.schedule_trigger import ScheduleTrigger
from nodes.set import Set
from nodes.sub_workflow import SubWorkflow
from nodes.switch import Switch
from nodes.switch_v2 import SwitchV2
from nodes.wait import Wait
from nodes.webhook_trigger import WebhookTrigger

NODE_TYPES = (
    ManualTrigger, Set, HttpRequest, If, Delay, IfV2, Switch, SwitchV2, Merge, Wait, SubWorkflow,
    ScheduleTrigger,
    GmailTrigger,
    RssTrigger,
    HttpPollTrigger,
    WebhookTrigger,
    RespondToWebhook,
)

registry = Registry(NODE_TYPES)
