"""The network layer: CNI plugin execution, netns pinning, networks, port mappings, DNS files.

Other layers use ``NetworkManager`` (built in the daemon's services as
``services.networks``) and the pure helpers ``parse_port_spec``, ``resolv_conf``
and ``hosts_file``. ``NetworkManager`` delegates to one module per operation over a
shared ``NetworkContext`` (``context``): ``networks``, ``attach``, ``detach``,
``hostports``, ``masquerade``, ``lifecycle``.
"""

from podkit.network.config import Network
from podkit.network.dns import hosts_file, parse_add_host, resolv_conf
from podkit.network.manager import NetworkManager
from podkit.network.netns import NetnsPins, is_netns
from podkit.network.ports import PortMapping, parse_port_spec, parse_port_specs

__all__ = [
    "Network",
    "NetworkManager",
    "NetnsPins",
    "PortMapping",
    "hosts_file",
    "is_netns",
    "parse_add_host",
    "parse_port_spec",
    "parse_port_specs",
    "resolv_conf",
]
