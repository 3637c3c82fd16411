"""The robotics I/O around the method: ROS message codecs, bags, stamp rules, the CARLA client, bag conversion."""
