"""Inputs through the real coflux 0.12.0 SDK: a workflow asks a person (`cf.Prompt`) and
returns the answer, or a marker when the input is dismissed."""

import coflux as cf

approval = cf.Prompt(
    "Deploy {service} to production?",
    title="Approve deployment",
    actions=("Deploy", "Cancel"),
    schema={
        "type": "object",
        "required": ["approved"],
        "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    },
)


@cf.workflow()
def ask(service):
    return approval(service=service)


@cf.workflow()
def ask_or_dismissed(service):
    try:
        return approval.with_key("dismissable")(service=service)
    except cf.InputDismissed:
        return "dismissed"


@cf.workflow()
def ask_name():
    return cf.Prompt("Your name?", model=str)()
