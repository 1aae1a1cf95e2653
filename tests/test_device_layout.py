"""The memory map and the mailbox are defined once (tinykws.device.layout) and both sides
agree: the linker script an image is linked with carries layout's MEMORY and STACK_SIZE,
the linked image sits inside it, and the generated tkws_mailbox.h has the offsets, size,
magic and status codes the host packs and reads."""

from __future__ import annotations

import re
import subprocess

import pytest

from codegen_host import STRICT, host_cc, toolchain_params
from tinykws.device import Emulator, build_image, read_symbols, runtime_dir
from tinykws.device.image import write_linker_script, write_mailbox_header
from tinykws.device.layout import (
    FLASH,
    MAILBOX,
    MAILBOX_BYTES,
    MAILBOX_FIELDS,
    MAILBOX_MAGIC,
    MAILBOX_STATUS,
    MEMORY,
    RAM,
    STACK_SIZE,
    mailbox_offset,
    pack_mailbox,
)
from tinykws.toolchain import find_toolchain

MEMORY_LINE = re.compile(
    r"^\s*(\w+)\s*\((\w+)\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,"
    r"\s*LENGTH\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*$",
    re.M,
)


def strip_comments(ld: str) -> str:
    return re.sub(r"/\*.*?\*/", "", ld, flags=re.S)


def test_linker_script_memory_block_is_layouts(tmp_path):
    ld = strip_comments(write_linker_script(tmp_path).read_text())
    block = re.search(r"MEMORY\s*\{(.*?)\}", ld, re.S)
    assert block, "the generated linker script has no MEMORY block"
    regions = [(n, a, int(o, 0), int(n_, 0)) for n, a, o, n_ in MEMORY_LINE.findall(block[1])]
    assert regions == [(r.name, r.access, r.origin, r.length) for r in MEMORY]
    (stack,) = re.findall(r"^STACK_SIZE\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*;", ld, re.M)
    assert int(stack, 0) == STACK_SIZE


def test_runtime_linker_script_has_no_memory_map_of_its_own():
    ld = strip_comments((runtime_dir() / "cortex_m4.ld").read_text())
    assert "MEMORY" not in ld and "ORIGIN =" not in ld
    assert not re.search(r"^\s*STACK_SIZE\s*=", ld, re.M)


@pytest.mark.parametrize("tc_name", toolchain_params())
def test_linked_image_sits_in_the_memory_map(tmp_path, tc_name):
    (tmp_path / "f.c").write_text("int tk_one(void) { return 1; }\n")
    elf = build_image([tmp_path / "f.c"], tmp_path, "hard", find_toolchain(tc_name),
                      harness=False, keep=["tk_one"])  # fmt: skip
    sym = {k: v.addr for k, v in read_symbols(elf).items()}
    assert sym["tkws_vectors"] == FLASH.origin  # the core reads the vector table at reset
    assert RAM.origin <= sym["_sdata"] <= sym["_sstack"]
    assert sym["_estack"] - sym["_sstack"] == STACK_SIZE
    assert sym["_mailbox_end"] == RAM.end
    em = Emulator(elf)
    assert em.flash == (FLASH.origin, FLASH.length) and em.ram == (RAM.origin, RAM.length)
    assert em.call("tk_one") == 1


def test_harness_image_has_the_hosts_mailbox_size(tmp_path):
    (tmp_path / "api.c").write_text(
        "void mfcc_Filter(void *c, const float *i, float *o) { (void)c; o[0] = i[0]; }\n"
        "void mfcc_Reset(void) {}\n"
        "void completemodel_Predict(void *c, const float *i, float *o) { (void)c; o[0] = i[0]; }\n"
        "void completemodel_Reset(void) {}\n"
    )
    elf = build_image([tmp_path / "api.c"], tmp_path, "soft", find_toolchain("zig"))
    syms = read_symbols(elf)
    assert syms["tkws_mailbox"].size == MAILBOX_BYTES
    assert syms["tkws_mailbox_data"].addr >= syms["tkws_mailbox"].addr + MAILBOX_BYTES


def test_generated_header_agrees_with_the_host_offsets(tmp_path):
    write_mailbox_header(tmp_path)
    prints = "".join(
        f'    printf("offset_{f.name} %u\\n", (unsigned)offsetof(tkws_mailbox_t, {f.name}));\n'
        for f in MAILBOX
    ) + "".join(
        f'    printf("status_{k} %u\\n", (unsigned)TKWS_MAILBOX_{k});\n' for k in MAILBOX_STATUS
    )
    (tmp_path / "main.c").write_text(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"tkws_mailbox.h\"\n"
        "int main(void) {\n"
        '    printf("sizeof %u\\n", (unsigned)sizeof(tkws_mailbox_t));\n'
        '    printf("magic %lu\\n", (unsigned long)TKWS_MAILBOX_MAGIC);\n'
        f"{prints}    return 0;\n}}\n"
    )
    exe = tmp_path / "main"
    subprocess.run([host_cc(), *STRICT, f"-I{tmp_path}", str(tmp_path / "main.c"), "-o",
                    str(exe)], check=True)  # fmt: skip
    out = dict(line.split() for line in subprocess.run(
        [str(exe)], check=True, capture_output=True, text=True).stdout.splitlines())  # fmt: skip
    assert int(out.pop("sizeof")) == MAILBOX_BYTES
    assert int(out.pop("magic")) == MAILBOX_MAGIC
    for k, v in MAILBOX_STATUS.items():
        assert int(out.pop(f"status_{k}")) == v
    assert out == {f"offset_{n}": str(mailbox_offset(n)) for n in MAILBOX_FIELDS}


def test_pack_mailbox_needs_every_host_field_and_no_device_field():
    host = {f.name: i + 1 for i, f in enumerate(MAILBOX) if not f.by_device and f.name != "magic"}
    words = pack_mailbox(**host)
    assert len(words) == MAILBOX_BYTES
    assert int.from_bytes(words[:4], "little") == MAILBOX_MAGIC
    status = mailbox_offset("status")
    assert int.from_bytes(words[status : status + 4], "little") == MAILBOX_STATUS["PENDING"]
    with pytest.raises(ValueError, match="missing"):
        pack_mailbox(**{k: v for k, v in host.items() if k != "n_blocks"})
    with pytest.raises(ValueError, match="frames_done"):
        pack_mailbox(**host, frames_done=3)


def test_magic_names_the_layout():
    assert MAILBOX_MAGIC >> 16 == 0x544B  # 'TK'
    assert len(set(MAILBOX_FIELDS)) == len(MAILBOX_FIELDS)
