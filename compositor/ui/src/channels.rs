//! FDC3's recommended user channels: eight colours an app can be linked by. The compositor shows
//! each tile's channel as a chip and lets the user change it; the FDC3 agent does the rest.

use egui::Color32;

/// One user channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// 1 to 8.
    pub number: u8,
    /// Its FDC3 id.
    pub id: &'static str,
    /// Its name in the standard ("Channel 1").
    pub name: &'static str,
    /// Its colour's name, as the standard gives it (a CSS colour name).
    pub colour_name: &'static str,
    /// Its colour.
    pub colour: Color32,
}

/// The eight recommended user channels of FDC3 2.x, in order; the colours are the CSS colours the
/// standard names.
pub const CHANNELS: [Channel; 8] = [
    Channel {
        number: 1,
        id: "fdc3.channel.1",
        name: "Channel 1",
        colour_name: "red",
        colour: Color32::from_rgb(0xFF, 0x00, 0x00),
    },
    Channel {
        number: 2,
        id: "fdc3.channel.2",
        name: "Channel 2",
        colour_name: "orange",
        colour: Color32::from_rgb(0xFF, 0xA5, 0x00),
    },
    Channel {
        number: 3,
        id: "fdc3.channel.3",
        name: "Channel 3",
        colour_name: "yellow",
        colour: Color32::from_rgb(0xFF, 0xFF, 0x00),
    },
    Channel {
        number: 4,
        id: "fdc3.channel.4",
        name: "Channel 4",
        colour_name: "green",
        colour: Color32::from_rgb(0x00, 0x80, 0x00),
    },
    Channel {
        number: 5,
        id: "fdc3.channel.5",
        name: "Channel 5",
        colour_name: "cyan",
        colour: Color32::from_rgb(0x00, 0xFF, 0xFF),
    },
    Channel {
        number: 6,
        id: "fdc3.channel.6",
        name: "Channel 6",
        colour_name: "blue",
        colour: Color32::from_rgb(0x00, 0x00, 0xFF),
    },
    Channel {
        number: 7,
        id: "fdc3.channel.7",
        name: "Channel 7",
        colour_name: "magenta",
        colour: Color32::from_rgb(0xFF, 0x00, 0xFF),
    },
    Channel {
        number: 8,
        id: "fdc3.channel.8",
        name: "Channel 8",
        colour_name: "purple",
        colour: Color32::from_rgb(0x80, 0x00, 0x80),
    },
];

/// The channel numbered `n`.
pub fn channel(n: u8) -> Option<&'static Channel> {
    CHANNELS.iter().find(|c| c.number == n)
}
