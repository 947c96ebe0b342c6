#include "PluginEditor.h"

#include <algorithm>

namespace sideman::plugin {

SidemanEditor::SidemanEditor(SidemanAudioProcessor& owner)
    : juce::AudioProcessorEditor(owner), processor_(owner) {
    addAndMakeVisible(promptLabel_);
    prompt_.setTextToShowWhenEmpty("describe the part to add, e.g. \"warm electric bass\"", juce::Colours::grey);
    prompt_.setText(processor_.controller().session().prompt, juce::dontSendNotification);
    prompt_.onTextChange = [this] { processor_.controller().setPrompt(prompt_.getText()); };
    addAndMakeVisible(prompt_);

    generate_.onClick = [this] { processor_.controller().requestGenerate(); };
    addAndMakeVisible(generate_);

    takes_.setRowHeight(22);
    addAndMakeVisible(takes_);
    noTakes_.setText("No takes yet: play some bars, then press Generate.", juce::dontSendNotification);
    noTakes_.setJustificationType(juce::Justification::centred);
    noTakes_.setInterceptsMouseClicks(false, false);
    addAndMakeVisible(noTakes_);

    status_.setJustificationType(juce::Justification::topLeft);
    status_.setMinimumHorizontalScale(1.0f);
    addAndMakeVisible(status_);

    addSlider(steps_, param::steps, "Steps");
    addSlider(guidanceContext_, param::guidanceContext, "Context guidance");
    addSlider(guidanceClap_, param::guidanceClap, "CLAP guidance");
    addSlider(seed_, param::seed, "Seed");
    addSlider(bars_, param::bars, "Bars");

    setResizable(true, true);
    setResizeLimits(420, 360, 1200, 900);
    setSize(560, 420);
    timerCallback();
    startTimerHz(10);
}

SidemanEditor::~SidemanEditor() { stopTimer(); }

void SidemanEditor::addSlider(LabelledSlider& s, const char* parameterId, const juce::String& name) {
    s.label.setText(name, juce::dontSendNotification);
    addAndMakeVisible(s.label);
    addAndMakeVisible(s.slider);
    s.attachment = std::make_unique<juce::AudioProcessorValueTreeState::SliderAttachment>(processor_.parameters(),
                                                                                          parameterId, s.slider);
}

void SidemanEditor::paint(juce::Graphics& g) {
    g.fillAll(getLookAndFeel().findColour(juce::ResizableWindow::backgroundColourId));
}

void SidemanEditor::resized() {
    auto area = getLocalBounds().reduced(10);
    auto row = area.removeFromTop(26);
    promptLabel_.setBounds(row.removeFromLeft(60));
    generate_.setBounds(row.removeFromRight(100));
    row.removeFromRight(8);
    prompt_.setBounds(row);
    area.removeFromTop(8);

    status_.setBounds(area.removeFromBottom(44));
    area.removeFromBottom(6);
    for (auto* s : { &bars_, &seed_, &guidanceClap_, &guidanceContext_, &steps_ }) {  // bottom up
        auto line = area.removeFromBottom(24);
        s->label.setBounds(line.removeFromLeft(130));
        s->slider.setBounds(line);
    }
    area.removeFromBottom(6);
    takes_.setBounds(area);
    noTakes_.setBounds(area.reduced(8));
}

int SidemanEditor::getNumRows() { return static_cast<int>(shownTakes_.size()); }

void SidemanEditor::paintListBoxItem(int row, juce::Graphics& g, int width, int height, bool selected) {
    if (row < 0 || row >= getNumRows()) return;
    const auto& take = shownTakes_[static_cast<size_t>(row)];
    if (selected) g.fillAll(getLookAndFeel().findColour(juce::TextEditor::highlightColourId));
    g.setColour(getLookAndFeel().findColour(juce::Label::textColourId));
    const auto text = juce::String(row + 1) + "   " + take.id + "   from ppq " + juce::String(take.anchorPpq, 2) +
                      " at " + juce::String(take.bpm, 1) + " bpm";
    g.drawText(text, 6, 0, width - 12, height, juce::Justification::centredLeft, true);
}

void SidemanEditor::selectedRowsChanged(int lastRowSelected) {
    if (updatingList_) return;
    auto* parameter = processor_.parameters().getParameter(param::take);
    const int index = lastRowSelected < 0 ? 0 : lastRowSelected + 1;
    parameter->beginChangeGesture();
    parameter->setValueNotifyingHost(parameter->convertTo0to1(static_cast<float>(index)));
    parameter->endChangeGesture();
}

void SidemanEditor::timerCallback() {
    status_.setText(processor_.controller().status(), juce::dontSendNotification);
    const auto session = processor_.controller().session();
    const bool changed = session.takes.size() != shownTakes_.size() || session.selectedTake != shownSelection_ ||
                         !std::equal(session.takes.begin(), session.takes.end(), shownTakes_.begin(),
                                     [](const TakeRecord& a, const TakeRecord& b) { return a.id == b.id; });
    if (!changed) return;
    shownTakes_ = session.takes;
    shownSelection_ = session.selectedTake;
    noTakes_.setVisible(shownTakes_.empty());
    const juce::ScopedValueSetter<bool> guard(updatingList_, true);
    takes_.updateContent();
    const int selected = session.indexOf(session.selectedTake);
    if (selected >= 0)
        takes_.selectRow(selected, false, true);
    else
        takes_.deselectAllRows();
    takes_.repaint();
}

}  // namespace sideman::plugin
