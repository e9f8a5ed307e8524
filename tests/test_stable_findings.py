"""Stable findings: a finding is its page (or pair of pages) and its evidence, on both back-ends.

A rerun of ``audit`` or of the synonym search on an unchanged catalog keeps every ref and every
curator decision; only changed evidence makes a new finding, which names the one it replaces.
The catalogs are test_curation's (a mixed "Eclipse" page) and test_synonyms' (pages with identical
recordings under a variant spelling and under an alias), both with the MFCC baseline.
"""

from __future__ import annotations

import json

from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import func, select
from test_curation import lib, write_library  # noqa: F401 - lib is a fixture
from test_synonyms import indexed, library, pair_of  # noqa: F401 - fixtures

from artdb.core.analysis.audit import run_audit
from artdb.core.analysis.findings import StoredFinding, reconcile
from artdb.core.analysis.synonyms import find_synonyms, synonym_candidates
from artdb.core.curation.reject import reject_finding
from artdb.core.curation.review import open_findings
from artdb.core.curation.undo import list_decisions, undo_decision
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.db.models import AuditFinding, SynonymCandidate


def test_reconcile_keeps_same_evidence_and_names_what_a_change_replaces():
    stored = [StoredFinding(1, "a", "x", "open"), StoredFinding(2, "b", "y", "open"),
              StoredFinding(3, "c", "z", "rejected"), StoredFinding(4, "d", "w", "open"),
              StoredFinding(5, "e", "v", "superseded")]
    r = reconcile(stored, {"a": "x", "b": "y2", "c": "z2", "e": "v"})
    assert r.kept == {"a": 1}  # same subject, same evidence: the same finding
    # changed evidence replaces the open finding (superseded) or the rejected one (left rejected)
    assert r.replaces == {"b": 2, "c": 3}
    assert r.superseded == [2, 4]  # "d" is no longer found; 3 stays rejected
    # a superseded finding is history: the same evidence again is a new finding
    assert "e" not in r.kept and "e" not in r.replaces


def _status(catalog, row, fid):
    with catalog.session() as s:
        return s.get(row, fid).status


def test_audit_rerun_keeps_refs_and_decisions(lib, tmp_path):  # noqa: F811
    catalog, paths, model, _ = lib
    first = run_audit(catalog, paths, model).findings[0]
    assert first.page == "Eclipse" and first.change == "new" and first.replaces_id is None
    ref = f"h{first.finding_id}"

    again = run_audit(catalog, paths, model)  # nothing changed: the same finding, the same ref
    assert [(p.finding_id, p.change) for p in again.findings] == [(first.finding_id, "unchanged")]
    dry = run_audit(catalog, paths, model, store=False)  # a dry run says the same, stores nothing
    assert [(p.finding_id, p.change) for p in dry.findings] == [(first.finding_id, "unchanged")]
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditFinding)) == 1

    # the curator rejects the ref read before the rerun (it used to be "superseded, not open")
    reject_finding(catalog, ref)
    third = run_audit(catalog, paths, model)
    assert third.findings == [] and [(p.page, p.finding_id, p.change) for p in third.suppressed] == [
        ("Eclipse", first.finding_id, "rejected")]
    assert _status(catalog, AuditFinding, first.finding_id) == "rejected"
    assert open_findings(catalog)["homonyms"] == []

    # changed evidence (a new album on the page): a new finding that names the one it replaces
    write_library(tmp_path / "more", [("Eclipse", "Low D", [("ld1", 113)])])
    index_catalog(catalog, paths, tmp_path / "more", IngestOptions(workers=1))
    fourth = run_audit(catalog, paths, model).findings
    assert len(fourth) == 1 and fourth[0].change == "new"
    assert fourth[0].finding_id != first.finding_id and fourth[0].replaces_id == first.finding_id
    assert _status(catalog, AuditFinding, first.finding_id) == "rejected"  # that decision stands
    found = open_findings(catalog)["homonyms"]
    assert [(f["id"], f["replaces"]) for f in found] == [(fourth[0].finding_id, ref)]
    fifth = run_audit(catalog, paths, model).findings
    assert [(p.finding_id, p.change) for p in fifth] == [(fourth[0].finding_id, "unchanged")]


def test_cli_audit_says_what_each_finding_is(lib, tmp_path, monkeypatch):  # noqa: F811
    catalog, paths, model, _ = lib
    if catalog.engine.dialect.name != "sqlite":
        return  # the CLI is the same over both back-ends; the library test covers PostgreSQL
    from artdb.cli.main import cli

    monkeypatch.setenv("ARTDB_HOME", str(paths.home))
    monkeypatch.setenv("ARTDB_DATABASE_URL", catalog.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    r = runner.invoke(cli, ["audit", "--no-progress"])
    assert r.exit_code == 0 and "1 flagged (0 unchanged, 1 new)" in r.output, r.output
    hid = open_findings(catalog)["homonyms"][0]["id"]
    assert f"h{hid} new" in r.output
    r = runner.invoke(cli, ["audit", "--no-progress", "--json"])
    page = json.loads(r.stdout)["pages"][0]
    assert (page["ref"], page["change"], page["replaces"]) == (f"h{hid}", "unchanged", None)
    assert [c["cluster"] for c in page["clusters"]] == [1, 2]
    write_library(tmp_path / "more", [("Eclipse", "Low D", [("ld1", 113)])])
    index_catalog(catalog, paths, tmp_path / "more", IngestOptions(workers=1))
    r = runner.invoke(cli, ["audit", "--no-progress", "--dry-run"])
    assert r.exit_code == 0 and "1 would be new" in r.output and f"replaces h{hid}" in r.output
    r = runner.invoke(cli, ["audit", "--no-progress"])
    new = open_findings(catalog)["homonyms"][0]["id"]
    assert f"h{new} replaces h{hid}" in r.output
    r = runner.invoke(cli, ["review"])
    assert f"h{new}" in r.output and f"replaces h{hid}" in r.output


def test_synonym_rerun_keeps_refs_and_decisions(indexed, tmp_path):  # noqa: F811
    catalog, paths, model = indexed
    first = find_synonyms(catalog, paths, model, min_score=0.0).pairs
    ids = {(p.page_a_id, p.page_b_id): p.id for p in first}
    assert all(p.change == "new" for p in first)

    again = find_synonyms(catalog, paths, model, min_score=0.0)  # unchanged catalog: same refs
    assert {(p.page_a_id, p.page_b_id): p.id for p in again.pairs} == ids
    assert again.changes() == {"unchanged": len(ids), "new": 0, "replacing": 0, "superseded": 0}
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(SynonymCandidate)) == len(ids)

    # a ref read before the rerun is still the candidate: rejected, it stays rejected
    _, alias = pair_of(first, "Blue Static", "Quiet Harbour")
    reject_finding(catalog, f"s{alias.id}")
    third = find_synonyms(catalog, paths, model, min_score=0.0)
    assert pair_of(third.pairs, "Blue Static", "Quiet Harbour") == (None, None)
    assert _status(catalog, SynonymCandidate, alias.id) == "rejected"
    assert {p.id for p in third.pairs} == set(ids.values()) - {alias.id}

    # new evidence for one pair (an album added to "Mira Kovac"): a new candidate replaces its
    # old one; every other pair keeps its ref
    _, mira = pair_of(first, "Mira Kovač", "Mira Kovac")
    for n in range(2):
        write_audio(tmp_path / "more" / f"{n}.wav", seconds=2.5, freq=300, seed=40 + n,
                    artist="Mira Kovac", album="Ponds", title=f"Ponds {n}")
    index_catalog(catalog, paths, tmp_path / "more", IngestOptions(workers=1))
    fourth = find_synonyms(catalog, paths, model, min_score=0.0).pairs
    _, mira2 = pair_of(fourth, "Mira Kovač", "Mira Kovac")
    assert mira2.id != mira.id and mira2.replaces_id == mira.id and mira2.change == "new"
    assert _status(catalog, SynonymCandidate, mira.id) == "superseded"
    listed = {p.id: p for p in synonym_candidates(catalog)}
    assert listed[mira2.id].replaces_id == mira.id
    # pairs not involving Mira Kovac kept their candidates
    mk = mira.page_a_id if mira.page_a == "Mira Kovac" else mira.page_b_id
    for p in fourth:
        if mk not in (p.page_a_id, p.page_b_id):
            assert p.id == ids[(p.page_a_id, p.page_b_id)] and p.change == "unchanged"

    # undoing the rejection reopens it; the next run keeps that very candidate
    decision = list_decisions(catalog)[0]
    assert (decision["action"], decision["finding_id"]) == ("reject", alias.id)
    undo_decision(catalog, decision["decision_id"])
    fifth = find_synonyms(catalog, paths, model, min_score=0.0).pairs
    assert pair_of(fifth, "Blue Static", "Quiet Harbour")[1].id == alias.id


def test_acting_on_a_replaced_finding_names_the_one_to_act_on(lib, tmp_path):  # noqa: F811
    """A ref whose evidence changed says which finding replaced it; undoing a rejection of a
    replaced finding leaves the newer one the only open finding of the page."""
    import pytest

    from artdb.core.curation.split import split_page
    from artdb.core.errors import CatalogError

    catalog, paths, model, _ = lib
    old = run_audit(catalog, paths, model).findings[0].finding_id
    write_library(tmp_path / "more", [("Eclipse", "Low D", [("ld1", 113)])])
    index_catalog(catalog, paths, tmp_path / "more", IngestOptions(workers=1))
    new = run_audit(catalog, paths, model).findings[0].finding_id
    for act in (lambda: reject_finding(catalog, f"h{old}"),
                lambda: split_page(catalog, "Eclipse", finding=f"h{old}")):
        with pytest.raises(CatalogError, match=f"h{old} was replaced by h{new}"):
            act()
    # a rejected finding replaced by newer evidence: undoing the rejection does not reopen it
    d = reject_finding(catalog, f"h{new}")
    write_library(tmp_path / "more2", [("Eclipse", "Low E", [("le1", 115)])])
    index_catalog(catalog, paths, tmp_path / "more2", IngestOptions(workers=1))
    newest = run_audit(catalog, paths, model).findings[0]
    assert newest.replaces_id == new and _status(catalog, AuditFinding, new) == "rejected"
    undo_decision(catalog, d.id)
    assert [f["id"] for f in open_findings(catalog)["homonyms"]] == [newest.finding_id]
    assert _status(catalog, AuditFinding, new) == "superseded"
