"""svs_gan_ros: the ROS 2 face of svsgan (generator node, launch file, bag conversion)."""
