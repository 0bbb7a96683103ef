"""What this machine is: its hardware (RAM, disk, CPU, GPUs) and where oi_local keeps its files."""
