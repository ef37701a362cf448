{
	"patcher": {
		"fileversion": 1,
		"appversion": {
			"major": 8,
			"minor": 6,
			"revision": 0,
			"architecture": "x64",
			"modernui": 1
		},
		"classnamespace": "box",
		"rect": [ 100.0, 100.0, 980.0, 500.0 ],
		"default_fontsize": 12.0,
		"default_fontname": "Arial",
		"gridsize": [ 15.0, 15.0 ],
		"boxes": [
			{
				"box": {
					"id": "obj-1",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 30.0, 15.0, 620.0, 20.0 ],
					"text": "perform over OSC: these sliders set the default patch's params (UDP to port 9000); perform's feedback comes back on UDP port 9001."
				}
			},
			{
				"box": {
					"id": "obj-2",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 30.0, 50.0, 210.0, 20.0 ],
					"text": "walk/speed: 0..1 loops per second"
				}
			},
			{
				"box": {
					"id": "obj-3",
					"maxclass": "slider",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 30.0, 75.0, 200.0, 20.0 ],
					"floatoutput": 1,
					"min": 0.0,
					"size": 1.0,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-4",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 30.0, 105.0, 125.0, 22.0 ],
					"text": "prepend /walk/speed"
				}
			},
			{
				"box": {
					"id": "obj-5",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 260.0, 50.0, 250.0, 20.0 ],
					"text": "walk/size: 0..4, how far the loop travels"
				}
			},
			{
				"box": {
					"id": "obj-6",
					"maxclass": "slider",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 260.0, 75.0, 200.0, 20.0 ],
					"floatoutput": 1,
					"min": 0.0,
					"size": 4.0,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-7",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 260.0, 105.0, 115.0, 22.0 ],
					"text": "prepend /walk/size"
				}
			},
			{
				"box": {
					"id": "obj-8",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 530.0, 50.0, 60.0, 22.0 ],
					"text": "loadbang"
				}
			},
			{
				"box": {
					"id": "obj-9",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 530.0, 80.0, 165.0, 22.0 ],
					"text": "/perform/feedback/add 9001"
				}
			},
			{
				"box": {
					"id": "obj-10",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 700.0, 75.0, 240.0, 47.0 ],
					"text": "Asks perform to send feedback to this computer's port 9001. Sent when the patch opens; click it if perform started later.",
					"linecount": 3
				}
			},
			{
				"box": {
					"id": "obj-11",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 530.0, 130.0, 180.0, 22.0 ],
					"text": "/perform/feedback/remove 9001"
				}
			},
			{
				"box": {
					"id": "obj-12",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 530.0, 165.0, 90.0, 22.0 ],
					"text": "/perform/ping"
				}
			},
			{
				"box": {
					"id": "obj-13",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 630.0, 160.0, 310.0, 60.0 ],
					"text": "perform answers /perform/pong (and /perform/ok, /perform/refused) to the port udpsend sent from, which Max does not listen on. To see the answer: python tools/osc_send.py /perform/ping --reply 1",
					"linecount": 4
				}
			},
			{
				"box": {
					"id": "obj-14",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 30.0, 230.0, 140.0, 22.0 ],
					"text": "udpsend 127.0.0.1 9000"
				}
			},
			{
				"box": {
					"id": "obj-15",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 30.0, 290.0, 100.0, 22.0 ],
					"text": "udpreceive 9001"
				}
			},
			{
				"box": {
					"id": "obj-16",
					"maxclass": "newobj",
					"numinlets": 5,
					"numoutlets": 5,
					"outlettype": [ "", "", "", "", "" ],
					"patching_rect": [ 30.0, 325.0, 360.0, 22.0 ],
					"text": "route /walk/speed /walk/size /perform/fps /perform/beat"
				}
			},
			{
				"box": {
					"id": "obj-17",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 30.0, 365.0, 60.0, 22.0 ],
					"format": 6,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-18",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 120.0, 365.0, 60.0, 22.0 ],
					"format": 6,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-19",
					"maxclass": "flonum",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 210.0, 365.0, 60.0, 22.0 ],
					"format": 6,
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-20",
					"maxclass": "number",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [ "", "bang" ],
					"patching_rect": [ 300.0, 365.0, 50.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-21",
					"maxclass": "button",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "bang" ],
					"patching_rect": [ 360.0, 365.0, 22.0, 22.0 ],
					"parameter_enable": 0
				}
			},
			{
				"box": {
					"id": "obj-22",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 30.0, 390.0, 60.0, 20.0 ],
					"text": "speed"
				}
			},
			{
				"box": {
					"id": "obj-26",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 120.0, 390.0, 60.0, 20.0 ],
					"text": "size"
				}
			},
			{
				"box": {
					"id": "obj-27",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 210.0, 390.0, 60.0, 20.0 ],
					"text": "fps"
				}
			},
			{
				"box": {
					"id": "obj-28",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 300.0, 390.0, 60.0, 20.0 ],
					"text": "beat"
				}
			},
			{
				"box": {
					"id": "obj-23",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 30.0, 420.0, 75.0, 22.0 ],
					"text": "prepend set"
				}
			},
			{
				"box": {
					"id": "obj-24",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [ "" ],
					"patching_rect": [ 120.0, 420.0, 75.0, 22.0 ],
					"text": "prepend set"
				}
			},
			{
				"box": {
					"id": "obj-25",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [ 210.0, 420.0, 330.0, 33.0 ],
					"text": "'set' moves the sliders without sending, so they follow other controllers (and perform's clamping) without echoing back.",
					"linecount": 2
				}
			}
		],
		"lines": [
			{
				"patchline": {
					"source": [ "obj-3", 0 ],
					"destination": [ "obj-4", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-4", 0 ],
					"destination": [ "obj-14", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-6", 0 ],
					"destination": [ "obj-7", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-7", 0 ],
					"destination": [ "obj-14", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-8", 0 ],
					"destination": [ "obj-9", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-9", 0 ],
					"destination": [ "obj-14", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-11", 0 ],
					"destination": [ "obj-14", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-12", 0 ],
					"destination": [ "obj-14", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-15", 0 ],
					"destination": [ "obj-16", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 0 ],
					"destination": [ "obj-17", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 0 ],
					"destination": [ "obj-23", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 1 ],
					"destination": [ "obj-18", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 1 ],
					"destination": [ "obj-24", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 2 ],
					"destination": [ "obj-19", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 3 ],
					"destination": [ "obj-20", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-16", 3 ],
					"destination": [ "obj-21", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-23", 0 ],
					"destination": [ "obj-3", 0 ]
				}
			},
			{
				"patchline": {
					"source": [ "obj-24", 0 ],
					"destination": [ "obj-6", 0 ]
				}
			}
		]
	}
}
