"""What artdb shows people: catalog statistics, browsing (``ls``, ``show``), the HTML report, the
end-to-end demo."""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "stats": ["catalog_stats"],
    "browse": ["album_details", "format_row", "list_catalog", "page_details", "show"],
    "report": ["ReportSummary", "collect_findings", "render_report", "write_report"],
    "excerpts": ["ExcerptOptions"],
    "demo_config": ["DemoConfig"],
    "demo": ["DemoResult", "run_demo"],
})
