"""What the collection declares about itself agrees: floors, execution environments, license, changelog."""
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(ROOT, path)) as handle:
        return handle.read()


def floor_pins():
    pins = {}
    for line in read("tests/requirements-floor.txt").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([0-9.]+)\s*$", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_the_floors_tested_are_the_floors_declared():
    pins = floor_pins()
    assert "kubernetes>=%s" % pins["kubernetes"] in read("requirements.txt").split()
    assert "kubernetes >= %s" % pins["kubernetes"] in read("plugins/doc_fragments/auth.py")
    assert yaml.safe_load(read("meta/runtime.yml"))["requires_ansible"] == ">=%s" % pins["ansible-core"]
    assert yaml.safe_load(read("tests/config.yml"))["modules"]["python_requires"] == ">=3.10"


def test_execution_environment_pins_and_no_second_collection_version():
    ee = yaml.safe_load(read("execution-environment.yml"))
    image = ee["images"]["base_image"]["name"]
    assert ":" in image and not image.endswith(":latest")
    for key in ("ansible_core", "ansible_runner"):
        assert re.match(r"^ansible-(core|runner)==[0-9]+\.[0-9]+\.[0-9]+$", ee["dependencies"][key]["package_pip"])
    core = ee["dependencies"]["ansible_core"]["package_pip"].split("==")[1]
    assert tuple(int(x) for x in core.split(".")) >= tuple(int(x) for x in floor_pins()["ansible-core"].split("."))
    assert ee["dependencies"]["python"] == "requirements.txt"
    meta = yaml.safe_load(read("meta/execution-environment.yml"))
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    version = yaml.safe_load(read("galaxy.yml"))["version"]
    for path in ("execution-environment.yml", "meta/execution-environment.yml"):
        repeated = re.search(r"(?<![0-9.])%s(?![0-9])" % re.escape(version), read(path))
        assert not repeated, "%s repeats the collection version %s (galaxy.yml owns it)" % (path, version)


def test_the_license_text_is_the_one_every_header_points_to():
    assert yaml.safe_load(read("galaxy.yml"))["license"] == ["GPL-3.0-or-later"]
    text = read("COPYING")
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE") and "Version 3, 29 June 2007" in text
    assert "COPYING" not in yaml.safe_load(read("galaxy.yml"))["build_ignore"]
    for base in ("plugins",):
        for folder, _dirs, names in os.walk(os.path.join(ROOT, base)):
            for name in names:
                if name.endswith(".py") and name != "__init__.py":
                    with open(os.path.join(folder, name)) as handle:
                        head = handle.read(400)
                    assert "GNU General Public License v3.0+ (see COPYING" in head, os.path.join(folder, name)
