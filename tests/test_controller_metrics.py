"""The Prometheus text the controller serves (vmbundle.controller.metrics): pure."""

from __future__ import annotations

from vmbundle.controller.metrics import Family, render


def test_families_are_written_whole_with_escaped_labels() -> None:
    text = render(
        [
            Family(
                "vmbundle_guest_rss_bytes", "gauge", "Resident memory.", [({"vm": "web01"}, 123.0)]
            ),
            Family("vmbundle_x_total", "counter", "Odd labels.", [({"where": 'a"b\\c\nd'}, 1.5)]),
            Family("vmbundle_arc_size_bytes", "gauge", "ARC size.", [({}, 2.0)]),
        ]
    )
    assert text.splitlines() == [
        "# HELP vmbundle_guest_rss_bytes Resident memory.",
        "# TYPE vmbundle_guest_rss_bytes gauge",
        'vmbundle_guest_rss_bytes{vm="web01"} 123',
        "# HELP vmbundle_x_total Odd labels.",
        "# TYPE vmbundle_x_total counter",
        'vmbundle_x_total{where="a\\"b\\\\c\\nd"} 1.5',
        "# HELP vmbundle_arc_size_bytes ARC size.",
        "# TYPE vmbundle_arc_size_bytes gauge",
        "vmbundle_arc_size_bytes 2",
    ]
    assert text.endswith("\n")
