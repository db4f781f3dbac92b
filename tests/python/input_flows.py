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


@cf.task()
def quick():
    return 7


@cf.workflow()
def race_and_cancel():
    handle = cf.Prompt("Pick a number", model=int).submit()
    winner, remaining = cf.select([handle, quick.submit()])
    value = winner.result()
    assert remaining == [handle]
    handle.cancel()
    try:
        handle.result()
    except cf.ExecutionCancelled:
        return [value, "cancelled"]
    return [value, "not cancelled"]


@cf.workflow()
def ask_name():
    return cf.Prompt("Your name?", model=str)()


@cf.workflow()
def meanwhile():
    return quick()
