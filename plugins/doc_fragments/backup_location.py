# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a backup's files are: the options backup_record, resource_export and backup_info share."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  storage_dir:
    description:
      - The backup storage directory, laid out like a Velero backup storage location. Default
        C($XDG_DATA_HOME/kubehooks/storage), else C(~/.local/share/kubehooks/storage).
    type: path
  cluster:
    description:
      - The cluster's directory under O(storage_dir) (letters, digits, C(.), C(_), C(-)), so that the backups
        of several clusters never share a directory - C(<storage_dir>/<cluster>/backups/<name>). Without
        it, C(<storage_dir>/backups/<name>).
    type: str
  backup_dir:
    description:
      - The directory of one backup, used as it is instead of C(<storage_dir>/[<cluster>/]backups/<name>).
        Mutually exclusive with O(storage_dir) and O(cluster).
    type: path
"""
