"""Files in and out: images, masks, class lists, archives and the data set layouts (COCO, VOC, folders)."""
