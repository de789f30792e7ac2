"""Asset checks. `report_schema` is blocking: when it fails nothing is published."""

import dagster as dg

from assets.partitions import partition_date
from assets.report import REPORT_KEY
from assets.resources import ObjectStoreResource
from etl_project import checks


def report_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=REPORT_KEY,
        blocking=True,
        partitions_def=partitions_def,
        description="The staged report satisfies every rule of the report contract.",
    )
    def report_schema(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        result = checks.report_schema(object_store.open(), partition_date(context))
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=result.summary,
            metadata=result.metadata,
        )

    return [report_schema]
