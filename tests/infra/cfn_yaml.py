"""A YAML loader for CloudFormation templates, whose short-form tags (`!Ref`, `!Sub`, ...) PyYAML rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class CloudFormationLoader(yaml.SafeLoader):
    """Reads `!Tag value` as the long form `{"Fn::Tag": value}` (`{"Ref": value}` for `!Ref`)."""


def _construct_intrinsic(loader: CloudFormationLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)  # `!GetAtt Res.Attr` is `Fn::GetAtt: [Res, Attr]`
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        document = yaml.load(handle, Loader=CloudFormationLoader)  # a SafeLoader: no arbitrary objects
    assert isinstance(document, dict)
    return document
