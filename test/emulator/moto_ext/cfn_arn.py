"""A mixin for the launcher's CloudFormation resources whose only attribute is `Arn`.

moto finds resource types through `CloudFormationModel.__subclasses__()` (direct subclasses only),
so this is a mixin, not a base class: `class CfnX(ArnAttribute, CloudFormationModel)`.
"""

from __future__ import annotations

from typing import Any


class ArnAttribute:
    arn: str

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return self.arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()
