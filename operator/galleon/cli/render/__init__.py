"""What `kubectl galleon` prints: pure functions from objects (dicts as the API returns
them, camelCase) to rich renderables.

- `pieces`: text, states, bars, sizes, times, tables, and a kind's list (`listing`
  of `Column`s: NAME, the kind's columns, AGE).
- `scaleset`: a ScaleSet in detail, its list's columns, its upgrade history.
- `imageversion`: an ImageVersion's replication, its list's columns, and the
  versions of an ImageDefinition.
- `imagebuild`: an ImageBuild in detail (its steps), its list's columns, and the
  builds of an ImageTemplate.
- `plan`: what `plan scaleset NAME` prints, from its plan document, section by section.

Rules of this package:
- No I/O and no clock: a function that shows ages takes `now`.
- Text that comes from the cluster (names, messages, reasons) is never parsed as
  rich markup: it goes through `text()`, so a message with "[brackets]" prints as is.
- A field the operator has not written yet shows as "-", never as an error: the
  plugin must work on any status, including an empty one.
- Progress bars are plain characters (█ done, ░ left) so they read the same in a
  terminal, a CI log or a test's `export_text()`.
"""

from galleon.cli.render.imagebuild import (
    IMAGEBUILD_COLUMNS,
    build_columns,
    builds_view,
    imagebuild_list,
    imagebuild_view,
    newest_builds,
    short_digest,
    steps_table,
    truncate,
)
from galleon.cli.render.imageversion import (
    IMAGEVERSION_COLUMNS,
    imageversion_list,
    newest_first,
    replication_view,
    versions_view,
)
from galleon.cli.render.pieces import (
    BAR_WIDTH,
    DASH,
    STATE_STYLES,
    Column,
    age,
    bar,
    conditions_table,
    elapsed,
    fields,
    format_bytes,
    heading,
    listing,
    percent,
    progress,
    section,
    state,
    table,
    text,
    timestamp,
    to_text,
)
from galleon.cli.render.plan import PLAN_SECTIONS, batch_line, plan_view
from galleon.cli.render.scaleset import (
    SCALESET_COLUMNS,
    history_view,
    instances_table,
    scaleset_list,
    scaleset_view,
    upgrade_view,
)

__all__ = [
    "BAR_WIDTH",
    "DASH",
    "IMAGEBUILD_COLUMNS",
    "IMAGEVERSION_COLUMNS",
    "PLAN_SECTIONS",
    "SCALESET_COLUMNS",
    "STATE_STYLES",
    "Column",
    "age",
    "bar",
    "batch_line",
    "build_columns",
    "builds_view",
    "conditions_table",
    "elapsed",
    "fields",
    "format_bytes",
    "heading",
    "history_view",
    "imagebuild_list",
    "imagebuild_view",
    "imageversion_list",
    "instances_table",
    "listing",
    "newest_builds",
    "newest_first",
    "percent",
    "plan_view",
    "progress",
    "replication_view",
    "scaleset_list",
    "scaleset_view",
    "section",
    "short_digest",
    "state",
    "steps_table",
    "table",
    "text",
    "timestamp",
    "to_text",
    "truncate",
    "upgrade_view",
    "versions_view",
]
