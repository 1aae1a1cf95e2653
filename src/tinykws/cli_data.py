"""`tinykws data ...`: the commands that get and organise speech data (download, lists,
synth, negatives), each a thin wrapper over its `tinykws.data` function.

`tinykws.cli` adds this group to the main app. As there, each command imports its stage
inside its function (fast `--help`; a missing extra fails only its command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tinykws.errors import TinyKWSError

data_app = typer.Typer(help="Get and organise speech data.", no_args_is_help=True)
console = Console(stderr=True)


# ---------------------------------------------------------------- data (issue 3)


@data_app.command("download")
def data_download(
    dest: Path = typer.Option(..., help="Folder to create with the unpacked dataset."),
    url: Optional[str] = typer.Option(
        None, help="Archive URL, tar of any compression (default: the official Speech Commands v0.02)."
    ),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive (hex)."),
    keep_archive: bool = typer.Option(False, help="Keep the downloaded archive beside DEST."),
    max_extracted_gb: float = typer.Option(
        16.0, help="Refuse an archive that downloads or unpacks to more than this many GiB "
        "(archive bombs, endless answers; the official archive is also capped at its own size)."
    ),
) -> None:
    """Download and safely unpack a dataset (resumable; re-running a finished one does nothing)."""
    from tinykws.data.download import DEFAULT_URL, MARKER, download_dataset, download_info

    if not 0 < max_extracted_gb < float("inf"):
        raise TinyKWSError(f"--max-extracted-gb must be a positive number, not {max_extracted_gb}")
    already = (dest / MARKER).is_file()
    download_dataset(dest, url=DEFAULT_URL if url is None else url, sha256=sha256, keep_archive=keep_archive,
                     max_bytes=max(1, int(max_extracted_gb * 2**30)))
    info = download_info(dest)
    state = "already downloaded" if already else "downloaded"
    console.print(f"{state}: {dest} ({info['files']} files, sha256 {info['sha256']})")


@data_app.command("lists")
def data_lists(
    data_dir: list[Path] = typer.Argument(..., help="Speech Commands-layout folder(s): clips from all; "
                                         "validation/testing from those with lists, the others training only."),
    out: Path = typer.Option(..., help="Folder for categories.txt, the *_list.txt files and silence crops."),
    task: str = typer.Option("google12", help="google12 | all | WORD,WORD,..."),
    max: Optional[int] = typer.Option(None, "--max", help="Cap on training clips per keyword class."),
    unknown_share: float = typer.Option(1.0, help="Unknown clips per split, as a multiple of the mean keyword class."),
    train_unknown_share: Optional[float] = typer.Option(None, help="The training split's unknown share alone (default: --unknown-share)."),
    silence: Optional[int] = typer.Option(None, help="Silence crops over all splits (default: one keyword class' worth per split)."),
    seed: int = typer.Option(0, help="Seed for every random choice (lists are deterministic)."),
    on_error: str = typer.Option("raise", help="raise | skip: what to do with an unreadable noise file."),
    negatives: Optional[Path] = typer.Option(None, help="A `tinykws data negatives` folder: add its training/validation speech to _unknown_ and its background clips to _silence_ (its held-apart part is never listed)."),
    negatives_share: Optional[float] = typer.Option(None, help="With --negatives: negative speech clips per split, as a multiple of the mean keyword class (default: all)."),
) -> None:
    """Write the training/validation/testing lists and categories for a task (the seed's make_training_list.py)."""
    from rich.table import Table

    from tinykws.data.speech_commands import SPLITS, make_lists

    s = make_lists(
        data_dir, task, out, max_per_class=max, unknown_share=unknown_share, silence_count=silence,
        train_unknown_share=train_unknown_share,
        seed=seed, on_error=_on_error(on_error), negatives_dir=negatives, negatives_share=negatives_share,
    )  # fmt: skip
    table = Table(title=f"{task}: {len(s.categories)} categories, splits from the {s.split_source}")
    table.add_column("category")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for c in s.categories:
        table.add_row(c, *(str(s.counts[sp][c]) for sp in SPLITS))
    table.add_row("[bold]total", *(f"[bold]{s.total(sp)}" for sp in SPLITS))
    table.add_row("speakers", *(str(s.speakers[sp]) for sp in SPLITS))
    if s.negatives:
        table.add_row("of which negatives", *(f"{s.negatives[sp]['speech']} + {s.negatives[sp]['background']} bg" for sp in SPLITS))
    Console().print(table)
    if s.outside_links:
        console.print(f"[yellow]warning:[/] skipped {len(s.outside_links)} link(s) that lead outside "
                      f"{data_dir} (e.g. {escape(s.outside_links[0])}); copy the files in to use them")
    if s.speaker_overlap:
        console.print(f"[yellow]warning:[/] {s.speaker_overlap} speakers appear in more than one split (the dataset's lists are not speaker-disjoint)")
    _print_skipped(s.audio["skipped"])
    console.print(f"lists written to {out}")


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., help="Folder to create with the synthetic dataset."),
    per_word: int = typer.Option(50, help="Clips per word (= number of voices)."),
    words: Optional[str] = typer.Option(None, help="Comma list of words (default: 10 keywords + 25 others)."),
    seed: int = typer.Option(0, help="Same seed, same dataset."),
    workers: Optional[int] = typer.Option(None, help="Processes (default: all cores)."),
    noise_seconds: float = typer.Option(30.0, help="Length of each synthesized background noise."),
) -> None:
    """Synthesize a Speech Commands-layout dataset with espeak-ng (no download)."""
    from tinykws.data.synth import DEFAULT_WORDS, synthesize

    word_list = tuple(_comma_list(words, "--words")) if words is not None else DEFAULT_WORDS
    s = synthesize(out, words=word_list, per_word=per_word, seed=seed, workers=workers, noise_seconds=noise_seconds)
    if s.reused:
        console.print(f"{out} already holds this dataset (same words, per-word count and seed): nothing to do")
    else:
        sp = s.speakers
        console.print(
            f"{s.clips} clips of {len(s.words)} words by {sum(sp.values())} voices "
            f"({sp['training']} training, {sp['validation']} validation, {sp['testing']} testing), "
            f"{len(s.noise_files)} noise files in {s.seconds:.1f} s -> {out}"
        )


@data_app.command("negatives")
def data_negatives(
    out: Path = typer.Option(..., help="Folder to create (or finish) with the negatives."),
    utterances: int = typer.Option(50_000, help="Synthesized non-keyword utterances (1-s clips)."),
    words: int = typer.Option(6000, help="Distinct common words (the most frequent in wordfreq)."),
    phrases: int = typer.Option(1500, help="Distinct two-word phrases, each with a near-miss."),
    near_misses: int = typer.Option(40, help="Near-miss words per keyword (closest in cmudict phonemes)."),
    voices: int = typer.Option(1000, help="Distinct voices, split 80/10/10 into training/validation/held apart."),
    background: int = typer.Option(5000, help="Background-only 1-s clips over the full loudness range."),
    keywords: str = typer.Option("yes,no,up,down,left,right,on,off,stop,go", help="Comma list: never said, and the targets of the near-misses."),
    seed: int = typer.Option(0, help="Same seed, same set; use the seed of `data synth` (same held-out voices)."),
    workers: Optional[int] = typer.Option(None, help="Processes (default: all cores)."),
    noise_seconds: float = typer.Option(60.0, help="Length of each synthesized background noise."),
) -> None:
    """Synthesize non-keyword speech in bulk (words, near-misses, phrases) and background clips. Resumable."""
    from tinykws.data.negatives import NegativesConfig, make_negatives

    s = make_negatives(out, NegativesConfig(
        utterances=utterances, words=words, phrases=phrases, near_miss_count=near_misses,
        voices=voices, background=background, keywords=_comma_list(keywords, "--keywords"),
        seed=seed, noise_seconds=noise_seconds), workers=workers)
    if s.reused:
        console.print(f"{out} already holds this negatives set: nothing to do")
        return
    items = {sp: sum(k.values()) for sp, k in s.items.items()}
    console.print(
        f"{s.utterances} utterances of {sum(items.values())} words and phrases "
        f"({items['training']} training, {items['validation']} validation, {items['testing']} held apart) "
        f"by {sum(s.voices.values())} voices, {s.background} background clips, {s.hours:.1f} h, "
        f"{s.bytes / 1e9:.2f} GB in {s.seconds:.0f} s ({s.jobs_run} of {s.jobs} jobs run, "
        f"{s.clips_per_second:.0f} clips/s) -> {out}"
    )


@data_app.command("cache")
def data_cache(
    clean: bool = typer.Option(False, help="Remove the sets an older tinykws made (no run reads them again)."),
    every: bool = typer.Option(False, "--all", help="With --clean: remove every set (runs make theirs again)."),
    dry_run: bool = typer.Option(False, help="With --clean: name what would go, remove nothing."),
) -> None:
    """List the negatives sets of the user cache ($TINYKWS_CACHE or ~/.cache/tinykws), or remove them."""
    from tinykws.data.cache import cached_sets, clean_cache, negatives_cache

    if (every or dry_run) and not clean:
        raise TinyKWSError("--all and --dry-run go with --clean")
    root = negatives_cache()
    if not clean:
        from rich.table import Table

        sets = cached_sets()
        table = Table("GB", "made", "for this tinykws")
        table.add_column("set (keywords-seed-key)", overflow="fold")  # the key tells sets apart: never cut
        for s in sets:
            use = {"current": "yes", "stale": "no: stale", "newer": "no: a newer tinykws's"}.get(s.status, "no manifest")
            table.add_row(f"{s.bytes / 1e9:.2f}", "complete" if s.complete else "partial", use, escape(s.path.name))
        if sets:
            console.print(table)
        total = sum(s.bytes for s in sets) / 1e9
        console.print(f"{len(sets)} negatives set(s), {total:.2f} GB in {escape(str(root))}")
        return
    removed, busy = clean_cache(every=every, dry_run=dry_run)
    for s in removed:
        console.print(f"{'would remove' if dry_run else 'removed'} {escape(s.path.name)} ({s.bytes / 1e9:.2f} GB)")
    for s in busy:
        console.print(f"[yellow]kept {escape(s.path.name)}: a pipeline is making it[/]")
    freed = sum(s.bytes for s in removed) / 1e9
    console.print(f"{len(removed)} set(s), {freed:.2f} GB {'to free' if dry_run else 'freed'} in {escape(str(root))}")


def _comma_list(value: str, flag: str) -> list[str]:
    """`a,b,c` -> [a, b, c]; an empty item (`a,,b`, `a,`) is an error, not dropped."""
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise TinyKWSError(f"{flag} {value!r} has an empty item; give words separated by single commas")
    return items


def _on_error(value: str) -> str:
    if value not in ("raise", "skip"):
        raise TinyKWSError(f"--on-error must be raise or skip, not {value!r}")
    return value


def _print_skipped(skipped: list[dict]) -> None:
    """List the files that --on-error skip left out (CLI commands that load audio in bulk)."""
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/]")
        for item in skipped:
            console.print(f"  {item['reason']}")
